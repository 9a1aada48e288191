/* embed.js — the chat widget, for other sites' pages:
     <script src="https://SWITCHYARD/c/embed.js" data-chat="TOKEN" async></script>
   puts the chat page in an iframe where the tag is. A classic script (not a module), so
   that it can find its own tag; it defines no globals. Whether the frame shows is the
   chat page's decision (its frame-ancestors lists the link's allowed origins). */
(function () {
  var tags = document.querySelectorAll("script[data-chat]");
  for (var i = 0; i < tags.length; i++) {
    var tag = tags[i];
    if (tag.dataset.chatMounted) continue;
    tag.dataset.chatMounted = "1";
    var token = tag.dataset.chat;
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) continue;
    var base = new URL(tag.src, document.baseURI).origin;
    var frame = document.createElement("iframe");
    frame.src = base + "/c/" + token + "/?embed=1";
    frame.title = tag.dataset.title || "Chat";
    frame.setAttribute("data-switchyard-chat", token);
    frame.width = tag.dataset.width || "380";
    frame.height = tag.dataset.height || "520";
    frame.style.border = "1px solid #cbd5e1";
    frame.style.borderRadius = "8px";
    tag.parentNode.insertBefore(frame, tag.nextSibling);
  }
})();
