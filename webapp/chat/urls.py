"""The chat pages: the editor's panel under /flows/<id>/chat/, and a chat link's public
page and calls under /c/ (no login)."""

from django.urls import path

from webapp.chat import panel, public

urlpatterns = [
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
