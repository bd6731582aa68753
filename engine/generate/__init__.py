"""From a conversation to engine events: chat formatting and templates (templates/), the generation loop
(loop.py), the prefix cache, and text/: UTF-8 stream, stop matcher, reasoning splitter, tool-call parser,
budget and the event builder that local backends and remote servers share."""
