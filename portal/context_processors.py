from accounts.actors import actor_for_request


def portal_context(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"actor": actor_for_request(request)}
