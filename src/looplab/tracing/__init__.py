"""Recording traces: span context, SDK wrappers, the background writer, pricing and redaction."""
