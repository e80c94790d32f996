"""Attribute keys read by the OTLP mapping: OpenTelemetry GenAI semantic conventions
(``gen_ai.*``, several generations of them), OpenInference (``llm.*``, ``input.value``, ...) and a
few general OpenTelemetry ones. One module, so no key is a scattered string literal.
"""

from __future__ import annotations

# --- OpenTelemetry GenAI ---------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # the older name of gen_ai.provider.name
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_REQUEST_PREFIX = "gen_ai.request."
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"  # older
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"  # older
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_COST = "gen_ai.usage.cost"  # not in the spec; sent by LiteLLM and Langfuse's SDKs
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"  # JSON: [{"role", "parts": [...]}]
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"
# Flattened prompts and completions (OpenLLMetry / Traceloop): gen_ai.prompt.0.role, ...
GEN_AI_PROMPT = "gen_ai.prompt"
GEN_AI_COMPLETION = "gen_ai.completion"

# Span events of the GenAI conventions before messages moved into attributes.
GEN_AI_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
GEN_AI_CHOICE_EVENT = "gen_ai.choice"
# Older still: one event each holding the whole prompt / completion as JSON.
GEN_AI_CONTENT_PROMPT_EVENT = "gen_ai.content.prompt"
GEN_AI_CONTENT_COMPLETION_EVENT = "gen_ai.content.completion"
# Newest: one event holding gen_ai.input.messages / gen_ai.output.messages.
GEN_AI_OPERATION_DETAILS_EVENT = "gen_ai.client.inference.operation.details"

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
EMBEDDING_OPERATIONS = frozenset({"embeddings", "embedding"})
TOOL_OPERATIONS = frozenset({"execute_tool"})
RETRIEVAL_OPERATIONS = frozenset({"retrieval"})

# --- OpenInference ---------------------------------------------------------------------------
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
INPUT_VALUE = "input.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME_TYPE = "output.mime_type"
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_SYSTEM = "llm.system"
LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
LLM_INPUT_MESSAGES = "llm.input_messages"
LLM_OUTPUT_MESSAGES = "llm.output_messages"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL = "llm.token_count.total"
LLM_TOKEN_COUNT_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
LLM_COST_TOTAL = "llm.cost.total"
LLM_FINISH_REASON = "llm.finish_reason"
EMBEDDING_MODEL_NAME = "embedding.model_name"
EMBEDDING_EMBEDDINGS = "embedding.embeddings"
EMBEDDING_INVOCATION_PARAMETERS = "embedding.invocation_parameters"
RETRIEVAL_DOCUMENTS = "retrieval.documents"
TOOL_NAME = "tool.name"
SESSION_ID = "session.id"
USER_ID = "user.id"
METADATA = "metadata"  # JSON object
TAG_TAGS = "tag.tags"  # list of strings

# Keys inside one flattened message (llm.input_messages.N.<key>).
MESSAGE_ROLE = "message.role"
MESSAGE_CONTENT = "message.content"
MESSAGE_CONTENTS = "message.contents"
MESSAGE_NAME = "message.name"
MESSAGE_TOOL_CALLS = "message.tool_calls"
MESSAGE_TOOL_CALL_ID = "message.tool_call_id"
MESSAGE_CONTENT_TYPE = "message_content.type"
MESSAGE_CONTENT_TEXT = "message_content.text"
TOOL_CALL_ID = "tool_call.id"
TOOL_CALL_FUNCTION_NAME = "tool_call.function.name"
TOOL_CALL_FUNCTION_ARGUMENTS = "tool_call.function.arguments"
DOCUMENT_PREFIX = "document."
EMBEDDING_TEXT = "embedding.text"
EMBEDDING_VECTOR = "embedding.vector"

OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "TOOL": "tool",
    "EVALUATOR": "evaluator",
    "CHAIN": "span",
    "AGENT": "span",
    "GUARDRAIL": "span",
    "UNKNOWN": "span",
}

# --- general OpenTelemetry -------------------------------------------------------------------
ENDUSER_ID = "enduser.id"
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
DEPLOYMENT_ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
ERROR_TYPE = "error.type"
# Langfuse's OpenTelemetry attributes for the same trace fields.
LANGFUSE_SESSION_ID = "langfuse.session.id"
LANGFUSE_USER_ID = "langfuse.user.id"

# Where looplab keeps OpenTelemetry's own span fields in a span's attributes JSON.
OTEL_SPAN_KIND = "otel.span_kind"
OTEL_SCOPE = "otel.scope"
OTEL_EVENTS = "otel.events"
OTEL_LINKS = "otel.links"
OTEL_TRACE_STATE = "otel.trace_state"
OTEL_RESOURCE = "otel.resource"

# OpenTelemetry provider names -> genai-prices provider ids, where they differ.
PRICING_PROVIDERS = {
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "aws.bedrock": "aws",
    "az.ai.openai": "azure",
    "azure.ai.openai": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}
