"""Gets an access token from a running server through the API and prints it.

usage: token.py BASE_URL register USERNAME
       token.py BASE_URL login USERNAME PASSWORD

`register` creates the user: registration is user-interactive, so the first
POST /register answers 401 with a session and the second completes the
`m.login.dummy` stage in that session. `login` logs an existing user in with
its password. Standard library only: it needs nothing from the fuzzing venv.
"""

import json
import secrets
import sys
import urllib.error
import urllib.request


def post(url, body):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def register(base, username):
    url = f"{base}/_matrix/client/v3/register"
    body = {"username": username, "password": secrets.token_urlsafe(24)}
    status, challenge = post(url, body)
    if status != 401 or "session" not in challenge:
        sys.exit(f"register {username}: expected a 401 challenge, got {status} {challenge}")
    body["auth"] = {"type": "m.login.dummy", "session": challenge["session"]}
    status, done = post(url, body)
    if status != 200 or "access_token" not in done:
        sys.exit(f"register {username}: expected 200 with an access token, got {status} {done}")
    return done["access_token"]


def login(base, username, password):
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": username},
        "password": password,
    }
    status, done = post(f"{base}/_matrix/client/v3/login", body)
    if status != 200 or "access_token" not in done:
        sys.exit(f"login {username}: expected 200 with an access token, got {status} {done}")
    return done["access_token"]


def main():
    match sys.argv[1:]:
        case [base, "register", username]:
            print(register(base, username))
        case [base, "login", username, password]:
            print(login(base, username, password))
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
