"""The wire protocol and its clients: the codec, the engine process's client, servers."""
