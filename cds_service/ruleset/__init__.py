"""Rules as data: the typed rule model, loading and checking rule files with file:line problems, compiling to
durable-rules, and the engine wrapper."""
