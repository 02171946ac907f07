"""Who is asking: how a request's caller is named on what it starts (``callers``)."""
