"""The pipeline's stages, one module per doit task and named like it (tasks/<task>.py wires
each to its inputs and outputs): each holds its stage's entry point, `run_<task>_stage`, and
what only that stage does. What several stages or the tests use lives in the package above."""
