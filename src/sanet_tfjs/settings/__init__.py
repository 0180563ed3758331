"""pipeline.yaml's sections, one module each (config.py puts them together and loads the file).

A stage that validates its own section imports that section's module alone, so its derived
code inputs (tasks/closure.py) hold that schema and no other: editing one section's schema
reruns only the stages that import it, never every stage.
"""
