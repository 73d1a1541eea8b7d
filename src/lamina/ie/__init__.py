"""Information extraction with IEPile/OneKE-style instruction models.

Pure parts (task table, instruction builder, schema split/merge, schema ->
GBNF grammar, lenient parsing, metrics, input/output files) do not touch a
model; ``api`` runs them against a loaded ``lamina.Model``.
"""
