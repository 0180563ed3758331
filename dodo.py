"""doit entry point. It only collects the stages (tasks/graph.py); settings are in pipeline.yaml.

doit list      the stages, one line each
doit           build everything into artifacts/
"""

from tasks.graph import load_graph

globals().update(load_graph())
