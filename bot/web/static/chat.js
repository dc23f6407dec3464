// The web chat's only script. It keeps nothing in the browser (no storage, no cache), and loads nothing
// from anywhere else. Without it the page still works: every form posts and the page comes back.
(function () {
  "use strict";
  var body = document.body;
  var exitUrl = body.getAttribute("data-exit-url");
  var token = body.getAttribute("data-token");
  var lastId = parseInt(body.getAttribute("data-last-id"), 10) || 0;
  var log = document.getElementById("log");
  var typing = document.getElementById("typing");
  var typingTimer = null;
  var leaving = false;

  function form(fields) {
    var data = new FormData();
    data.append("token", token);
    Object.keys(fields).forEach(function (name) { data.append(name, fields[name]); });
    return data;
  }

  // Exit this page: the way out first, then tell the server (which ends the session) without waiting.
  function leave() {
    if (leaving) { return; }
    leaving = true;
    try { navigator.sendBeacon("/exit", form({})); } catch (e) { /* leaving matters more */ }
    body.innerHTML = "";
    document.title = "";
    window.location.replace(exitUrl);
  }

  var exitButton = document.getElementById("exit-this-page");
  exitButton.addEventListener("click", function (event) { event.preventDefault(); leave(); });

  // Shift pressed 3 times (alone, within 5 seconds) also leaves, as GOV.UK's "Exit this page" does.
  var shifts = 0, shiftTimer = null, otherKey = false;
  var exitStatus = document.getElementById("exit-status");
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Shift") { otherKey = true; shifts = 0; exitStatus.textContent = ""; }
  });
  document.addEventListener("keyup", function (event) {
    if (event.key !== "Shift") { return; }
    if (otherKey) { otherKey = false; return; }
    shifts += 1;
    clearTimeout(shiftTimer);
    shiftTimer = setTimeout(function () { shifts = 0; exitStatus.textContent = ""; }, 5000);
    if (shifts >= 3) { leave(); return; }
    exitStatus.textContent = "Shift, press " + (3 - shifts) + " more time" + (shifts === 2 ? "" : "s") + " to exit.";
  });

  function post(path, fields) {
    return fetch(path, {
      method: "POST", body: form(fields), credentials: "same-origin", cache: "no-store",
      headers: { "X-Requested-With": "signpost" }
    }).then(function (response) {
      if (response.status === 403) { window.location.reload(); }
      if (response.status === 429) { return response.text().then(function (text) { show({ id: 0, text: text, buttons: [], mine: false }); }); }
    }).catch(function () {
      show({ id: 0, text: "That didn't send. Please check your connection and try again.", buttons: [], mine: false });
    });
  }

  function buttonsFor(line) {
    var holder = document.createElement("form");
    holder.className = "buttons";
    holder.method = "post";
    holder.action = "/press";
    line.buttons.forEach(function (b) {
      var button = document.createElement("button");
      button.type = "submit";
      button.name = "data";
      button.value = b.data;
      button.textContent = b.title;
      holder.appendChild(button);
    });
    return holder;
  }

  function show(line) {
    var element = document.createElement("div");
    element.className = "line " + (line.mine ? "mine" : "ours");
    if (line.id) { element.setAttribute("data-id", String(line.id)); }
    var text = document.createElement("p");
    text.textContent = line.text;
    element.appendChild(text);
    if (line.buttons && line.buttons.length) { element.appendChild(buttonsFor(line)); }
    var old = line.id ? log.querySelector('[data-id="' + line.id + '"]') : null;
    if (old) { log.replaceChild(element, old); } else { log.appendChild(element); }
    if (line.id > lastId) { lastId = line.id; }
    if (!line.mine) { typing.hidden = true; }
    element.scrollIntoView({ block: "end" });
  }

  function handle(event) {
    if (event.type === "line") { show(event); }
    else if (event.type === "delete") {
      event.ids.forEach(function (id) {
        var gone = log.querySelector('[data-id="' + id + '"]');
        if (gone) { gone.remove(); }
      });
    } else if (event.type === "typing") {
      typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typing.hidden = true; }, 6000);
    } else if (event.type === "end") { log.innerHTML = ""; }
    else if (event.type === "reload") { window.location.reload(); }
  }

  // Replies arrive live: server-sent events, or long polling where a network breaks event streams.
  var failures = 0;
  function listen() {
    if (!window.EventSource) { poll(); return; }
    var source = new EventSource("/events?after=" + lastId);
    source.onmessage = function (message) { failures = 0; handle(JSON.parse(message.data)); };
    source.onerror = function () {
      failures += 1;
      if (failures >= 3 || source.readyState === EventSource.CLOSED) { source.close(); poll(); }
    };
  }
  function poll() {
    if (leaving) { return; }
    fetch("/poll?after=" + lastId, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (answer) { answer.events.forEach(handle); setTimeout(poll, 100); })
      .catch(function () { setTimeout(poll, 3000); });
  }

  var sendForm = document.getElementById("send");
  var box = document.getElementById("message");
  sendForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = box.value.trim();
    if (!text) { return; }
    box.value = "";
    post("/send", { message: text });
    box.focus();
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); sendForm.requestSubmit(); }
  });

  log.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = event.submitter;
    if (!button) { return; }
    post("/press", { data: button.value, title: button.textContent });
    box.focus();
  });

  document.querySelector(".forget").addEventListener("submit", function (event) {
    event.preventDefault();
    post("/forget", {});
  });

  listen();
}());
