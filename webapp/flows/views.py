from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def flow_list(request):
    return HttpResponse("flows")
