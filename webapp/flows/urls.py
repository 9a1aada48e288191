"""Every page of the flows app, grouped by prefix: what serves ``/flows/5/shares/`` is
under ``flow_urls``, in the feature's folder it names.

A flow's runs (``/flows/5/run-form/``, ``recent-runs/``, ``runs/``) are served by
``webapp/runs/urls.py``; the JSON API by ``webapp/api.py``.
"""

from django.urls import include, path

from webapp.flows import views
from webapp.flows.collab import views as collab
from webapp.flows.editor import edges
from webapp.flows.editor import views as editor
from webapp.flows.gallery import views as gallery
from webapp.flows.public import views as public
from webapp.flows.sharing import views as sharing
from webapp.flows.transfer import views as transfer
from webapp.flows.versions import views as versions
from webapp.flows.webhooks import receive
from webapp.flows.webhooks import views as webhooks

# /flows/<flow_id>/...
flow_urls = [
    path("", editor.flow_editor, name="flow_editor"),
    path("node-form/", editor.node_form, name="flow_node_form"),
    path("edge-form/", edges.edge_form, name="flow_edge_form"),
    path("duplicate/", views.flow_duplicate, name="flow_duplicate"),
    path("delete/", views.flow_delete, name="flow_delete"),
    path("versions/", versions.version_list, name="flow_versions"),
    path("versions/diff/", versions.version_diff, name="flow_diff"),
    path("versions/latest/", versions.version_meta, name="flow_version_meta"),
    path("versions/<int:number>/", versions.version_detail, name="flow_version"),
    path("versions/<int:number>/restore/", versions.version_restore, name="flow_restore"),
    path("versions/<int:number>/publish/", versions.version_publish, name="flow_publish"),
    path("versions/unpublish/", versions.version_unpublish, name="flow_unpublish"),
    path("webhooks/", webhooks.hook_page, name="flow_webhooks"),
    path("webhooks/<int:hook_id>/toggle/", webhooks.hook_toggle, name="flow_hook_toggle"),
    path("webhooks/<int:hook_id>/rotate/", webhooks.hook_rotate, name="flow_hook_rotate"),
    path("webhooks/<int:hook_id>/delete/", webhooks.hook_delete, name="flow_hook_delete"),
    path("export/", transfer.flow_export, name="flow_export"),
    path("import/", transfer.flow_import_version, name="flow_import_version"),
    path("collab/saved/<int:number>/", collab.collab_saved, name="flow_collab_saved"),
    path("collab/diff/", collab.collab_diff, name="flow_collab_diff"),
    path("collab/copy/", collab.collab_copy, name="flow_collab_copy"),
    # The owner's share panel: shares with people and teams, a new owner, links.
    path("share/", sharing.flow_share, name="flow_share"),
    path("shares/", sharing.share_create, name="flow_share_create"),
    path("shares/<int:share_id>/", sharing.share_update, name="flow_share_update"),
    path("shares/<int:share_id>/remove/", sharing.share_remove, name="flow_share_remove"),
    path("transfer/", sharing.flow_transfer, name="flow_transfer"),
    path("share-links/", sharing.link_create, name="flow_link_create"),
    path("share-links/<int:link_id>/revoke/", sharing.link_revoke, name="flow_link_revoke"),
]

# /shares/<share_id>/...: the recipient's answer to a share waiting on their flow list.
share_urls = [
    path("accept/", sharing.share_accept, name="share_accept"),
    path("decline/", sharing.share_decline, name="share_decline"),
]

# /s/<token>/...: public, no login. Every URL 404s once the link is revoked or expired.
public_urls = [
    path("", public.public_share, name="public_share"),
    path("runs/<int:run_id>/", public.public_run, name="public_run"),
    path("runs/<int:run_id>/events", public.public_run_events, name="public_run_events"),
]

urlpatterns = [
    path("", views.flow_list, name="flow_list"),
    path("flows/new/", views.flow_new, name="flow_new"),
    path("flows/import/", transfer.flow_import, name="flow_import"),
    # The template gallery: the examples to start a flow from. A template is an example's
    # file name (lower-case letters, digits, _: the slug converter's charset).
    path("flows/templates/", gallery.gallery, name="flow_templates"),
    path("flows/templates/<slug:name>/use/", gallery.use, name="flow_template_use"),
    path("flows/<int:flow_id>/", include(flow_urls)),
    path("shares/<int:share_id>/", include(share_urls)),
    # A link to one run, made from the run page (the flow's owner only).
    path("runs/<int:run_id>/share-link/", sharing.run_link, name="run_share_link"),
    path("s/<str:token>/", include(public_urls)),
    # A webhook's URL: signed deliveries from other systems, no login.
    path("hooks/<str:token>", receive.receive, name="hook_receive"),
]
