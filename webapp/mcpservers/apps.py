from django.apps import AppConfig


class McpServersConfig(AppConfig):
    name = "webapp.mcpservers"
    label = "mcpservers"
