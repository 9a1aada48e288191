from django.urls import path

from webapp.flows.collab.consumers import FlowConsumer

websocket_urlpatterns = [
    path("ws/flows/<int:flow_id>/", FlowConsumer.as_asgi()),
]
