"""The model behind the edge: an OpenAI Realtime speech-to-speech assistant for each call, and
the plain Python functions it may call (`tools`)."""
