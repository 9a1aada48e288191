from django.urls import path

from webapp.teams import views

urlpatterns = [
    path("teams/", views.team_list, name="team_list"),
    path("teams/<int:team_id>/", views.team_detail, name="team_detail"),
    path("teams/<int:team_id>/rename/", views.team_rename, name="team_rename"),
    path("teams/<int:team_id>/delete/", views.team_delete, name="team_delete"),
    path("teams/<int:team_id>/leave/", views.team_leave, name="team_leave"),
    path(
        "teams/<int:team_id>/members/<int:user_id>/role/",
        views.member_role,
        name="team_member_role",
    ),
    path(
        "teams/<int:team_id>/members/<int:user_id>/remove/",
        views.member_remove,
        name="team_member_remove",
    ),
    path("teams/<int:team_id>/invites/", views.invite_create, name="team_invite"),
    path("teams/<int:team_id>/invite-links/", views.invite_link_create, name="team_invite_link"),
    path(
        "teams/<int:team_id>/invites/<int:invite_id>/revoke/",
        views.invite_revoke,
        name="team_invite_revoke",
    ),
    path("invitations/<int:invite_id>/accept/", views.invitation_accept, name="invitation_accept"),
    path(
        "invitations/<int:invite_id>/decline/",
        views.invitation_decline,
        name="invitation_decline",
    ),
    path("invites/<str:token>/", views.invite_join, name="invite_join"),
]
