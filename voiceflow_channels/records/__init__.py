"""Call records: each call's figures, a bounded timeline of its events and (by setting) its
words and audio, kept in the user's database after the call and shown in Django's admin.

`timeline` (collecting the events), `picture` (drawing them as SVG) and `finished` (a call's
record as plain data) are framework-free; `writer` puts a record in the database, off the
event loop."""
