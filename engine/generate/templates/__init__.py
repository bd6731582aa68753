"""Chat templates the engine carries: the Nemotron template, for servers that do not expose theirs."""
