"""A relying party built on authlib (Debian's python3-authlib), run by authlib-rp.test.ts.

Usage: authlib-rp.py ISSUER CLIENT_ID CLIENT_SECRET|- REDIRECT_HOST PORT
It listens on 127.0.0.1:PORT (0: any free port), prints `AUTHORIZE <url>` for the test to drive the
person's side, and once the callback arrives redeems the code with PKCE, validates the ID token
(signature from the JWKS, iss, aud, nonce, at_hash), calls userinfo and refreshes. Its last line is
`RESULT <json>`; any failure is a traceback and a non-zero exit.
"""
import http.server
import json
import sys
import threading

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

issuer, client_id, client_secret, redirect_host, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
client_secret = None if client_secret == '-' else client_secret
metadata = requests.get(issuer + '/.well-known/openid-configuration', timeout=10).json()

arrived = threading.Event()
callback = {}


class Callback(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # Only the callback counts: a browser also asks for /favicon.ico.
        if self.path.startswith('/callback'):
            callback['path'] = self.path
            arrived.set()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(('127.0.0.1', port), Callback)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f'http://{redirect_host}:{server.server_address[1]}'

session = OAuth2Session(client_id, client_secret, scope='openid profile email offline_access',
                        redirect_uri=base + '/callback', code_challenge_method='S256',
                        token_endpoint_auth_method='client_secret_basic' if client_secret else 'none')
verifier, nonce = generate_token(48), generate_token(20)
url, _state = session.create_authorization_url(metadata['authorization_endpoint'], code_verifier=verifier, nonce=nonce)
print('AUTHORIZE', url, flush=True)
if not arrived.wait(30):
    sys.exit('no callback within 30 seconds')

token = session.fetch_token(metadata['token_endpoint'], authorization_response=base + callback['path'], code_verifier=verifier)
jwks = JsonWebKey.import_key_set(requests.get(metadata['jwks_uri'], timeout=10).json())
claims = jwt.decode(token['id_token'], jwks, claims_cls=CodeIDToken,
                    claims_options={'iss': {'essential': True, 'value': issuer}},
                    claims_params={'nonce': nonce, 'client_id': client_id, 'access_token': token['access_token']})
claims.validate(leeway=5)
userinfo = session.get(metadata['userinfo_endpoint'], timeout=10).json()
refreshed = session.refresh_token(metadata['token_endpoint'], refresh_token=token['refresh_token'])
print('RESULT', json.dumps({
    'redirect_uri': base + '/callback',
    'id_token': dict(claims),
    'userinfo': userinfo,
    'refreshed': refreshed['access_token'] != token['access_token'] and 'refresh_token' in refreshed,
}), flush=True)
