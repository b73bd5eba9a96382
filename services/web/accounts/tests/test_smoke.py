def test_me_anonymous(api, db):
    r = api.get("/api/auth/me")
    assert r.status_code == 401
    assert r.json() == {"error": "not_authenticated"}
