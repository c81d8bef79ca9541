"""One module per function: wires the API or batch processor to the logic; handlers call into these."""
