"""The login name as `sub` (like the node test provider), plus profile and email claims."""

import os

from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "sub": "openid"}

    def get_additional_claims(self, request):
        user = request.user
        return {
            "sub": user.username,
            "name": user.username.capitalize(),
            "email": f"{user.username}@example.test",
            "email_verified": True,
        }

    def client_authentication_required(self, request, *args, **kwargs):
        # LATCHKEY_DOT_REVOCATION_CLIENT_AUTH=1 (serve.py --revocation-requires-client-auth):
        # revoke tokens only for authenticated (confidential) clients, as some providers do.
        if os.environ.get("LATCHKEY_DOT_REVOCATION_CLIENT_AUTH") == "1" and "/revoke_token/" in (
            request.uri or ""
        ):
            return True
        return super().client_authentication_required(request, *args, **kwargs)
