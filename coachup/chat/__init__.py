"""Coach chat: the conversation in (`inputs`), the prompt (`prompt`), a LangChain chat model (`providers`:
the offline coach by default, OpenAI-compatible when configured) streamed token by token (`stream`) and framed
as Server-Sent Events (`sse`). No Flask here: `web/routes/chat.py` is the adapter.
"""

from .inputs import ChatInputs, Message, decode_b64url_json, parse_messages
from .prompt import build_prompt
from .providers import ChatModelChoice, choose_chat_model
from .stream import ChatStream, StreamOutcome

__all__ = [
    "ChatInputs",
    "Message",
    "decode_b64url_json",
    "parse_messages",
    "build_prompt",
    "ChatModelChoice",
    "choose_chat_model",
    "ChatStream",
    "StreamOutcome",
]
