// The login fallback (the spec's "Login Fallback"): logs in with the form's
// user and password through POST /_matrix/client/v3/login, forwarding the
// page's query parameters (device_id, initial_device_display_name, ...), and
// hands the response to window.matrixLogin.onLogin.
(function () {
    "use strict";
    var form = document.getElementById("login");
    var error = document.getElementById("error");
    form.addEventListener("submit", function (event) {
        event.preventDefault();
        error.hidden = true;
        var body = {
            type: "m.login.password",
            identifier: { type: "m.id.user", user: form.elements.user.value },
            password: form.elements.password.value,
        };
        new URLSearchParams(window.location.search).forEach(function (value, key) {
            if (key !== "type" && key !== "identifier" && key !== "password") {
                body[key] = value;
            }
        });
        fetch(form.dataset.endpoint, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(body),
        })
            .then(function (response) {
                return response.json().then(function (json) {
                    return { ok: response.ok, json: json };
                });
            })
            .then(function (result) {
                if (!result.ok) {
                    throw new Error(result.json.error || "Login failed");
                }
                document.getElementById("done").hidden = false;
                form.hidden = true;
                if (window.matrixLogin && window.matrixLogin.onLogin) {
                    window.matrixLogin.onLogin(result.json);
                }
            })
            .catch(function (e) {
                error.textContent = e.message;
                error.hidden = false;
            });
    });
})();
