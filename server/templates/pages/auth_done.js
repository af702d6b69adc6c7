// The interactive-auth fallback's last step, as the spec's "Fallback" section
// says: tell the client the stage is done.
if (window.onAuthDone) {
    window.onAuthDone();
} else if (window.opener && window.opener.postMessage) {
    window.opener.postMessage("authDone", "*");
}
