/* Frontdoor agent workspace: plain JS, no build step. Every text from the server is data: it is
   inserted with textContent, never innerHTML. Live views are Server-Sent Events (no polling). */
(function () {
  "use strict";

  var API = "/agent/api";
  var csrf = null;
  var me = null;
  var inbox = new Map(); // ref -> conversation
  var inboxSource = null;
  var current = null; // {ref, lastSeq, source}
  var currentTicket = null;
  var typingSentAt = 0;
  var userTypingTimer = null;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function when(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString();
  }

  function showAlert(text) {
    var box = $("alert");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function api(method, path, body) {
    var headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    return fetch(API + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      referrerPolicy: "same-origin", // so the browser sends our Origin (the page says no-referrer)
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().then(
        function (data) {
          if (!response.ok) {
            var detail = typeof data.detail === "string" ? data.detail : "the request was refused";
            if (response.status === 401) signedOut(detail);
            var error = new Error(detail);
            error.status = response.status;
            throw error;
          }
          return data;
        },
        function () {
          throw new Error("unexpected answer (" + response.status + ")");
        }
      );
    });
  }

  function fail(error) {
    showAlert(error.message || String(error));
  }

  // ---- sign-in ------------------------------------------------------------------------------

  function signedOut(reason) {
    me = null;
    csrf = null;
    if (inboxSource) inboxSource.close();
    if (current && current.source) current.source.close();
    $("main").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = reason || "";
    $("user").focus();
  }

  function signedIn(session) {
    me = session;
    csrf = session.csrf_token;
    $("sign-in").hidden = true;
    $("who").hidden = false;
    $("who-name").textContent = session.name + " (" + session.roles.join(", ") + ")";
    $("main").hidden = false;
    $("main").focus();
    openInbox();
    loadTickets();
    loadSaved();
  }

  $("sign-in-form").addEventListener("submit", function (event) {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    api("POST", "/session", { user: $("user").value, password: $("password").value }).then(
      function (session) {
        $("password").value = "";
        signedIn(session);
      },
      function (error) {
        $("sign-in-error").textContent = error.message;
        $("password").select();
      }
    );
  });

  $("sign-out").addEventListener("click", function () {
    api("DELETE", "/session").then(function () {
      signedOut("You signed out.");
    }, fail);
  });

  // ---- inbox (live) -------------------------------------------------------------------------

  function openInbox() {
    if (inboxSource) inboxSource.close();
    var source = (inboxSource = new EventSource(API + "/inbox/stream"));
    source.addEventListener("snapshot", function (event) {
      var data = JSON.parse(event.data);
      inbox.clear();
      data.conversations.forEach(function (c) {
        inbox.set(c.ref, c);
      });
      $("inbox-state").textContent = "Live.";
      renderInbox();
    });
    source.addEventListener("handoff", function (event) {
      var change = JSON.parse(event.data);
      var c = change.conversation;
      if (c.state === "ended") inbox.delete(c.ref);
      else inbox.set(c.ref, c);
      renderInbox();
      if (current && current.ref === c.ref) renderConversationMeta(c);
    });
    source.addEventListener("ticket", function (event) {
      var change = JSON.parse(event.data);
      scheduleTickets();
      if (currentTicket && change.ticket === currentTicket) openTicket(currentTicket, true);
    });
    source.addEventListener("reset", function () {
      openInbox();
    });
    source.onerror = function () {
      $("inbox-state").textContent = "Reconnecting…";
    };
  }

  function renderInbox() {
    var list = $("conversations");
    list.textContent = "";
    var items = Array.from(inbox.values()).sort(function (a, b) {
      return a.started_seq - b.started_seq;
    });
    $("waiting-count").textContent = "(" + items.length + ")";
    items.forEach(function (c) {
      var li = el("li");
      var button = el("button", "item" + (current && current.ref === c.ref ? " selected" : ""));
      button.type = "button";
      button.appendChild(el("strong", null, c.user));
      button.appendChild(el("span", "muted", " on " + c.channel + " · " + (c.state === "claimed" ? "claimed by " + (c.agent_name || c.agent) : "waiting")));
      button.appendChild(el("span", "snippet", c.text));
      button.setAttribute("aria-label", c.user + ", " + c.channel + ", " + c.state + ": " + c.text);
      button.addEventListener("click", function () {
        openConversation(c.ref);
      });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  // ---- tickets --------------------------------------------------------------------------------

  var ticketsTimer = null;
  function scheduleTickets() {
    clearTimeout(ticketsTimer);
    ticketsTimer = setTimeout(loadTickets, 200); // several changes of one action: one reload
  }

  function loadTickets() {
    var q = [];
    var status = $("f-status").value;
    if (status) q.push("status=" + status);
    else ["open", "pending", "on_hold"].forEach(function (s) { q.push("status=" + s); });
    if ($("f-priority").value) q.push("priority=" + $("f-priority").value);
    if ($("f-assignee").value) q.push("assignee=" + $("f-assignee").value);
    if ($("f-sla").checked) q.push("sla_due_minutes=60");
    api("GET", "/tickets?" + q.join("&")).then(function (data) {
      var list = $("tickets");
      list.textContent = "";
      data.items.forEach(function (t) {
        var li = el("li");
        var button = el("button", "item");
        button.type = "button";
        button.appendChild(el("strong", null, "#" + t.number + " " + t.subject));
        var due = t.sla_due_at ? " · SLA due " + when(t.sla_due_at) : "";
        button.appendChild(el("span", "muted", " " + t.status + " · " + t.priority + " · " + (t.assignee || "unassigned") + due));
        button.addEventListener("click", function () {
          openTicket(t.number);
        });
        li.appendChild(button);
        list.appendChild(li);
      });
      if (!data.items.length) list.appendChild(el("li", "muted", "No tickets match."));
    }, fail);
  }

  $("ticket-filters").addEventListener("change", loadTickets);

  function show(which) {
    $("detail-empty").hidden = true;
    $("conversation").hidden = which !== "conversation";
    $("ticket").hidden = which !== "ticket";
  }

  function openTicket(number, quiet) {
    currentTicket = number;
    Promise.all([api("GET", "/tickets/" + number), api("GET", "/tickets/" + number + "/history")]).then(function (both) {
      var t = both[0];
      show("ticket");
      $("ticket-title").textContent = "Ticket #" + t.number + ": " + t.subject;
      var fields = $("ticket-fields");
      fields.textContent = "";
      [
        ["Status", t.status], ["Priority", t.priority], ["Assignee", t.assignee || "unassigned"],
        ["Requester", (t.requester_name ? t.requester_name + " " : "") + "<" + t.requester_email + ">"],
        ["First response due", when(t.first_response_due_at) + (t.first_responded_at ? " (answered)" : t.first_response_breached ? " (breached)" : "")],
        ["Resolution due", when(t.resolution_due_at) + (t.resolution_breached ? " (breached)" : "")],
        ["Description", t.description || "—"],
      ].forEach(function (pair) {
        fields.appendChild(el("dt", null, pair[0]));
        fields.appendChild(el("dd", null, pair[1]));
      });
      $("t-status").value = t.status;
      $("t-priority").value = t.priority;
      $("t-assignee").value = t.assignee || "";
      var comments = $("ticket-comments");
      comments.textContent = "";
      t.comments.forEach(function (c) {
        var li = el("li", c.public ? "entry" : "entry note");
        li.appendChild(el("span", "author", (c.author_name || c.author) + (c.public ? "" : " (internal note)")));
        li.appendChild(el("time", "muted", when(c.created_at)));
        li.appendChild(el("p", null, c.body));
        comments.appendChild(li);
      });
      var history = $("ticket-history");
      history.textContent = "";
      both[1].entries.forEach(function (h) {
        var changes = Object.keys(h.changes || {}).map(function (k) {
          return k + ": " + JSON.stringify(h.changes[k]);
        }).join("; ");
        history.appendChild(el("li", null, when(h.at) + " " + (h.actor_name || h.actor) + " " + h.action + (changes ? " (" + changes + ")" : "") + (h.note ? " — " + h.note : "")));
      });
      if (!quiet) $("ticket-title").focus();
    }, fail);
  }
  $("ticket-title").tabIndex = -1;

  $("ticket-form").addEventListener("submit", function (event) {
    event.preventDefault();
    api("POST", "/tickets/" + currentTicket + "/update", { status: $("t-status").value, priority: $("t-priority").value }).then(function () {
      openTicket(currentTicket, true);
    }, fail);
  });

  $("t-assign").addEventListener("click", function () {
    var who = $("t-assignee").value.trim();
    api("POST", "/tickets/" + currentTicket + "/assign", { assignee: who || null }).then(function () {
      openTicket(currentTicket, true);
    }, fail);
  });

  $("comment-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { body: $("comment").value, public: !$("internal").checked };
    api("POST", "/tickets/" + currentTicket + "/comment", body).then(function () {
      $("comment").value = "";
      $("internal").checked = false;
      openTicket(currentTicket, true);
    }, fail);
  });

  // ---- a conversation -----------------------------------------------------------------------

  function renderConversationMeta(c) {
    $("conv-title").textContent = c.user + " on " + c.channel;
    var state = c.state === "claimed" ? "claimed by " + (c.agent_name || c.agent) : c.state;
    $("conv-meta").textContent = "Asked " + when(c.started_at) + " · bot " + (c.bot || "-") + " · " + state;
    var ended = c.state === "ended";
    ["claim", "assign", "handback", "close"].forEach(function (id) {
      $(id).disabled = ended;
    });
    $("claim").disabled = ended || (c.state === "claimed" && me && c.agent === me.actor);
  }

  function addEntry(entry) {
    if (!current || entry.seq <= current.lastSeq) return; // already shown
    current.lastSeq = entry.seq;
    var li = el("li", "entry " + entry.kind);
    var label = { user: "User", bot: "Bot", agent: "Agent", note: "Private note", system: "" }[entry.kind];
    li.appendChild(el("span", "author", (label ? label + " · " : "") + entry.author));
    li.appendChild(el("time", "muted", when(entry.at) + " · " + entry.channel));
    li.appendChild(el("p", null, entry.text));
    $("transcript").appendChild(li);
    li.scrollIntoView({ block: "nearest" });
    if (entry.ticket) addTicketChoice(entry.ticket);
    if (entry.kind === "user") $("user-typing").textContent = "";
  }

  function addTicketChoice(number) {
    var select = $("solve-ticket");
    if (select.querySelector('option[value="' + number + '"]')) return;
    var option = el("option", null, "#" + number);
    option.value = String(number);
    select.appendChild(option);
  }

  function openConversation(ref) {
    if (current && current.source) current.source.close();
    current = { ref: ref, lastSeq: 0, source: null };
    $("export-json").href = API + "/conversations/" + ref + "/export?format=json";
    $("export-text").href = API + "/conversations/" + ref + "/export?format=text";
    $("transcript").textContent = "";
    $("solve-ticket").textContent = "";
    var none = el("option", null, "none");
    none.value = "";
    $("solve-ticket").appendChild(none);
    renderInbox();
    api("GET", "/conversations/" + ref).then(function (data) {
      if (!current || current.ref !== ref) return;
      show("conversation");
      renderConversationMeta(data.conversation);
      data.tickets.forEach(addTicketChoice);
      data.entries.forEach(addEntry);
      var source = new EventSource(API + "/conversations/" + ref + "/stream?since=" + current.lastSeq);
      current.source = source;
      source.addEventListener("entry", function (event) {
        addEntry(JSON.parse(event.data));
      });
      source.addEventListener("typing", function (event) {
        var signal = JSON.parse(event.data);
        if (signal.who !== "user") return;
        $("user-typing").textContent = "The user is typing…";
        clearTimeout(userTypingTimer);
        userTypingTimer = setTimeout(function () {
          $("user-typing").textContent = "";
        }, 5000);
      });
      source.onerror = function () {
        // EventSource reconnects by itself; resume after what we showed
        source.close();
        if (current && current.ref === ref) {
          setTimeout(function () {
            if (current && current.ref === ref) reopenStream(ref);
          }, 1000);
        }
      };
      $("reply").focus();
    }, fail);
  }

  function reopenStream(ref) {
    var source = new EventSource(API + "/conversations/" + ref + "/stream?since=" + current.lastSeq);
    current.source = source;
    source.addEventListener("entry", function (event) {
      addEntry(JSON.parse(event.data));
    });
  }

  function act(path, body) {
    return api("POST", "/conversations/" + current.ref + path, body === undefined ? {} : body).catch(fail);
  }

  $("claim").addEventListener("click", function () {
    act("/claim");
  });
  $("assign").addEventListener("click", function () {
    var who = $("assign-to").value.trim();
    if (who) act("/claim", { agent: who });
  });
  $("handback").addEventListener("click", function () {
    act("/handback");
  });
  $("close").addEventListener("click", function () {
    var ticket = $("solve-ticket").value;
    act("/close", ticket ? { solve_ticket: Number(ticket) } : {});
  });

  $("reply-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("reply").value.trim();
    if (!text) return;
    var clientId = "r-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
    $("reply").value = "";
    act("/reply", { text: text, client_id: clientId });
    $("reply").focus();
  });
  $("reply").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("reply").addEventListener("input", function () {
    var now = Date.now();
    if (current && $("reply").value && now - typingSentAt > 3000) {
      typingSentAt = now;
      api("POST", "/conversations/" + current.ref + "/typing", { active: true }).catch(function () {});
    }
  });

  $("note-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("note").value.trim();
    if (!text) return;
    $("note").value = "";
    act("/note", { text: text });
  });

  // ---- saved replies ------------------------------------------------------------------------

  var saved = [];
  function loadSaved() {
    api("GET", "/saved-replies").then(function (data) {
      saved = data.replies;
      renderSaved();
    }, fail);
  }

  function renderSaved() {
    var select = $("saved");
    select.textContent = "";
    var first = el("option", null, "Insert a saved reply…");
    first.value = "";
    select.appendChild(first);
    saved.forEach(function (r, i) {
      var option = el("option", null, r.title);
      option.value = String(i);
      select.appendChild(option);
    });
  }

  $("saved").addEventListener("change", function () {
    var r = saved[Number($("saved").value)];
    if (r) {
      $("reply").value = r.text;
      $("reply").focus();
    }
    $("saved").value = "";
  });

  $("save-reply").addEventListener("click", function () {
    var text = $("reply").value.trim();
    if (!text) {
      showAlert("Write the reply to save first.");
      return;
    }
    var title = text.length > 40 ? text.slice(0, 39) + "…" : text;
    var next = saved.concat([{ title: title, text: text }]);
    api("PUT", "/saved-replies", { replies: next }).then(function (data) {
      saved = data.replies;
      renderSaved();
      showAlert("");
    }, fail);
  });

  // ---- start --------------------------------------------------------------------------------

  api("GET", "/session").then(signedIn, function (error) {
    signedOut(error.status === 401 ? "" : error.message);
  });
})();
