"""Rolling session summaries: an extractive offline summariser (`extract`) behind a LangChain chat model
(`offline`), the provider seam (`service`), and the versioned refresh of a session's summary (`refresh`)."""

from .extract import HEADER, summarise_extractive
from .service import SummaryResult, summarise

__all__ = ["HEADER", "summarise_extractive", "SummaryResult", "summarise"]
