"""LATCHKEY_DOT_IGNORE_PROMPT_LOGIN=1 (serve.py --ignore-prompt-login): drop `login` from
the `prompt` of authorization requests, as a widely used provider does while advertising
it, so the client's auth_time check can be shown against a real provider."""

import os


class IgnorePromptLogin:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            os.environ.get("LATCHKEY_DOT_IGNORE_PROMPT_LOGIN") == "1"
            and request.path == "/authorize/"
            and "prompt" in request.GET
        ):
            query = request.GET.copy()
            kept = [p for p in query.get("prompt", "").split() if p != "login"]
            if kept:
                query["prompt"] = " ".join(kept)
            else:
                del query["prompt"]
            request.GET = query
            request.META["QUERY_STRING"] = query.urlencode()
        return self.get_response(request)
