"""The node types, by name. One module each; this dict is the only registry."""

from graphs.nodes.agent import AgentNode
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services
from graphs.nodes.code import CodeNode
from graphs.nodes.http import HttpNode
from graphs.nodes.io import InputNode, OutputNode
from graphs.nodes.llm import LLMNode
from graphs.nodes.map import MapNode
from graphs.nodes.merge import MergeNode
from graphs.nodes.parse import ParseNode
from graphs.nodes.router import RouterNode
from graphs.nodes.subflow import SubflowNode
from graphs.nodes.template import TemplateNode

NODE_TYPES: dict[str, NodeType] = {
    "input": InputNode(),
    "output": OutputNode(),
    "template": TemplateNode(),
    "llm": LLMNode(),
    "router": RouterNode(),
    "merge": MergeNode(),
    "map": MapNode(),
    "agent": AgentNode(),
    "parse": ParseNode(),
    "http": HttpNode(),
    "subflow": SubflowNode(),
    "code": CodeNode(),
}

__all__ = ["NODE_TYPES", "CommonConfig", "NodeContext", "NodeType", "Services"]
