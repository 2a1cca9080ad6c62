"""How a stage runs: typed configs, the stage registry and contract, run records, output safety."""
