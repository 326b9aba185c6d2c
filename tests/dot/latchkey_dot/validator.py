"""The login name as `sub` (like the node test provider), plus profile and email claims."""

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
