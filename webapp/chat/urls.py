"""The chat pages: the editor's panel under /flows/<id>/chat/, and a chat link's public
page and calls under /c/ (no login)."""

from django.urls import path

from webapp.chat import panel, public, views

urlpatterns = [
    path("flows/<int:flow_id>/chat-links/", views.link_page, name="flow_chat_links"),
    path(
        "flows/<int:flow_id>/chat-links/<int:link_id>/toggle/",
        views.link_toggle,
        name="flow_chat_link_toggle",
    ),
    path(
        "flows/<int:flow_id>/chat-links/<int:link_id>/delete/",
        views.link_delete,
        name="flow_chat_link_delete",
    ),
    path("flows/<int:flow_id>/chat/messages", panel.send, name="chat_panel_send"),
    path(
        "flows/<int:flow_id>/chat/conversations/<int:conversation_id>/replies/<int:message_id>/stream",
        panel.reply_stream,
        name="chat_panel_stream",
    ),
    path("c/embed.js", public.embed_script, name="chat_embed"),
    path("c/<str:token>/", public.chat_page, name="chat_page"),
    path("c/<str:token>/messages", public.messages, name="chat_messages"),
    path(
        "c/<str:token>/conversations/<int:conversation_id>",
        public.conversation,
        name="chat_conversation",
    ),
    path(
        "c/<str:token>/conversations/<int:conversation_id>/replies/<int:message_id>/stream",
        public.reply_stream,
        name="chat_reply_stream",
    ),
]
