/*
 * Frontdoor chat widget — one <script src="https://frontdoor.example/widget.js"></script> tag.
 *
 * Plain JavaScript, no build step, no dependencies. Talks to the gateway that served this file:
 * POST /api/session (signed session token, kept in localStorage), GET /api/bots, and the
 * WebSocket /ws (first frame: the session token, never in the URL; replies in bus order,
 * resumed with ?since=<last seq> after a reconnect). A signed-in visitor: the embedding site
 * passes a user token it signed (data-user-token, or FrontdoorWidget.identify(token)).
 * Protocol: docs/web-channel.md. Options (data-* attributes on the script tag): docs/widget.md.
 *
 * Security: every text from users, bots and services is DATA. It is rendered by building DOM
 * nodes and setting textContent; the only markup understood is a tiny whitelist (bold, italic,
 * code, http(s) links). innerHTML is never used.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.FrontdoorWidget) {
    return;
  }

  // ---- options -------------------------------------------------------------------------------

  function attr(name, fallback) {
    var value = script.getAttribute("data-" + name);
    return value === null || value === "" ? fallback : value;
  }

  var base = (attr("server", "") || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var options = {
    base: base,
    title: attr("title", "Frontdoor"),
    bot: attr("bot", ""),
    bots: attr("bots", ""),
    open: attr("open", "false") === "true",
    position: attr("position", "right") === "left" ? "left" : "right",
    css: attr("css", "true") !== "false",
    target: attr("target", ""),
    greeting: attr("greeting", "Hi! Ask me anything, or pick a bot above."),
    historyLimit: 200,
  };
  // A user token signed by the embedding site (identity verification); kept in memory only.
  var userToken = attr("user-token", "") || null;
  var storageKey = "frontdoor:" + base;
  var MAX_CHARS = 2000;

  // ---- storage (never throws: private modes may refuse localStorage) --------------------------

  function load(name, fallback) {
    try {
      var raw = window.localStorage.getItem(storageKey + ":" + name);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }

  function save(name, value) {
    try {
      window.localStorage.setItem(storageKey + ":" + name, JSON.stringify(value));
    } catch (e) {
      /* storage full or disabled: the session simply does not survive a reload */
    }
  }

  function forget(name) {
    try {
      window.localStorage.removeItem(storageKey + ":" + name);
    } catch (e) {
      /* ignore */
    }
  }

  // ---- safe rendering ------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function safeUrl(raw) {
    try {
      var url = new URL(raw, base + "/"); // relative URLs are the front door's, not the page's
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  // `code` | [label](http(s)://url) | **bold** | *italic* | _italic_ | bare http(s) URL
  var INLINE = new RegExp(
    [
      "(`[^`\\n]+`)",
      "\\[([^\\]\\n]{1,200})\\]\\((https?:\\/\\/[^\\s)]{1,2000})\\)",
      "\\*\\*([^*\\n]+?)\\*\\*",
      "\\*([^*\\s][^*\\n]*?)\\*",
      "(^|[^\\w])_([^_\\n]+?)_(?!\\w)",
      "(https?:\\/\\/[^\\s<>()\"']*[^\\s<>()\"'.,;:!?])",
    ].join("|"),
    "g"
  );

  function link(label, href) {
    var url = safeUrl(href);
    if (!url) {
      return document.createTextNode(label);
    }
    var a = el("a", "fd-link", label);
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  function renderInline(text, parent, depth) {
    var last = 0;
    var match;
    var re = new RegExp(INLINE.source, "g"); // a fresh lastIndex per (recursive) call
    while ((match = re.exec(text)) !== null) {
      if (match.index > last) {
        parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      }
      if (match[1]) {
        parent.appendChild(el("code", "fd-code", match[1].slice(1, -1)));
      } else if (match[2]) {
        parent.appendChild(link(match[2], match[3]));
      } else if (match[4] !== undefined || match[5] !== undefined || match[7] !== undefined) {
        if (match[6]) {
          parent.appendChild(document.createTextNode(match[6])); // the char before `_`
        }
        var node = el(match[4] !== undefined ? "strong" : "em");
        var inner = match[4] !== undefined ? match[4] : match[5] !== undefined ? match[5] : match[7];
        if (depth < 3) {
          renderInline(inner, node, depth + 1);
        } else {
          node.textContent = inner;
        }
        parent.appendChild(node);
      } else if (match[8]) {
        parent.appendChild(link(match[8], match[8]));
      }
      last = re.lastIndex;
      if (match[0].length === 0) {
        re.lastIndex++;
      }
    }
    if (last < text.length) {
      parent.appendChild(document.createTextNode(text.slice(last)));
    }
  }

  /** Render `text` (plain text + the tiny markdown) into `parent`, line breaks kept. */
  function renderText(text, parent) {
    var lines = String(text || "").split("\n");
    for (var i = 0; i < lines.length; i++) {
      if (i > 0) {
        parent.appendChild(document.createElement("br"));
      }
      renderInline(lines[i], parent, 0);
    }
  }

  // ---- DOM -----------------------------------------------------------------------------------

  function chatIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "fd-bubble-icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute(
      "d",
      "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z" +
        "M7 9.5a1.5 1.5 0 1 0 0 .01zM12 9.5a1.5 1.5 0 1 0 0 .01zM17 9.5a1.5 1.5 0 1 0 0 .01z"
    );
    svg.appendChild(path);
    return svg;
  }

  var uid = "fd-" + Math.random().toString(36).slice(2, 8);
  var root = el("div", "fd-widget fd-" + options.position);
  root.setAttribute("data-frontdoor", "");
  var inline = options.target ? document.querySelector(options.target) : null;
  if (inline) {
    root.className += " fd-inline";
  }

  var bubble = el("button", "fd-bubble");
  bubble.type = "button";
  bubble.setAttribute("aria-label", "Open chat");
  bubble.setAttribute("aria-expanded", "false");
  bubble.setAttribute("aria-controls", uid + "-panel");
  bubble.appendChild(chatIcon());
  var unread = el("span", "fd-unread");
  unread.hidden = true;
  bubble.appendChild(unread);

  var panel = el("section", "fd-panel");
  panel.id = uid + "-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "false");
  panel.setAttribute("aria-labelledby", uid + "-title");
  panel.hidden = true;

  var header = el("header", "fd-header");
  var title = el("h2", "fd-title", options.title);
  title.id = uid + "-title";
  var botLabel = el("label", "fd-bot-label", "Bot");
  botLabel.htmlFor = uid + "-bot";
  var botSelect = el("select", "fd-bot");
  botSelect.id = uid + "-bot";
  var closeButton = el("button", "fd-close", "\u00D7");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  header.appendChild(title);
  header.appendChild(botLabel);
  header.appendChild(botSelect);
  header.appendChild(closeButton);

  var banner = el("div", "fd-banner");
  banner.setAttribute("role", "alert");
  banner.hidden = true;
  var bannerText = el("span", "fd-banner-text");
  var retryButton = el("button", "fd-retry", "Retry now");
  retryButton.type = "button";
  banner.appendChild(bannerText);
  banner.appendChild(retryButton);

  var log = el("div", "fd-log");
  log.id = uid + "-log";
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-relevant", "additions");
  log.setAttribute("aria-label", "Conversation");
  log.tabIndex = 0;

  var typing = el("div", "fd-typing");
  typing.setAttribute("role", "status");
  typing.hidden = true;
  typing.appendChild(el("span", "fd-dots")).setAttribute("aria-hidden", "true");
  var typingLabel = typing.appendChild(el("span", "fd-sr-only", "The bot is typing\u2026"));

  var form = el("form", "fd-form");
  form.setAttribute("aria-label", "Send a message");
  var inputLabel = el("label", "fd-sr-only", "Message");
  inputLabel.htmlFor = uid + "-input";
  var input = el("textarea", "fd-input");
  input.id = uid + "-input";
  input.rows = 1;
  input.maxLength = MAX_CHARS;
  input.placeholder = "Type a message\u2026";
  input.setAttribute("autocomplete", "off");
  input.setAttribute("aria-describedby", uid + "-hint");
  var hint = el("span", "fd-sr-only", "Enter sends, Shift+Enter starts a new line.");
  hint.id = uid + "-hint";
  var sendButton = el("button", "fd-send", "Send");
  sendButton.type = "submit";
  form.appendChild(inputLabel);
  form.appendChild(input);
  form.appendChild(hint);
  form.appendChild(sendButton);

  panel.appendChild(header);
  panel.appendChild(banner);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  if (!inline) {
    root.appendChild(bubble);
  }
  root.appendChild(panel);

  // ---- state ---------------------------------------------------------------------------------

  var session = load("session", null); // {token, sender}
  var lastSeq = load("seq", 0) || 0;
  var history = load("history", []) || [];
  var pending = load("pending", []) || []; // messages not acknowledged yet
  var ws = null;
  var attempt = 0;
  var reconnectTimer = null;
  var pingTimer = null;
  var typingTimer = null;
  var opened = false;
  var stopped = false;
  var connecting = false;

  function persist() {
    if (history.length > options.historyLimit) {
      history = history.slice(history.length - options.historyLimit);
    }
    save("history", history);
    save("seq", lastSeq);
    save("pending", pending);
  }

  // ---- the log -------------------------------------------------------------------------------

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function renderItem(item) {
    var row = el("div", "fd-msg fd-" + item.who + (item.status ? " fd-status-" + item.status : ""));
    if (item.id) {
      row.setAttribute("data-id", item.id);
    }
    var who = item.who === "user" ? "You" : item.who === "agent" ? item.name || "Support agent" : item.who === "system" ? "" : item.name || "Bot";
    if (who) {
      row.appendChild(el("span", "fd-sr-only", who + ": "));
      if (item.who === "agent") {
        row.appendChild(el("span", "fd-author", who));
      }
    }
    var body = el("div", "fd-text");
    renderText(item.text, body);
    row.appendChild(body);
    if (item.image && safeUrl(item.image)) {
      var img = el("img", "fd-image");
      img.src = safeUrl(item.image);
      img.alt = "Image sent by the bot";
      img.loading = "lazy";
      row.appendChild(img);
    }
    if (item.sending) {
      row.appendChild(el("span", "fd-sending", "sending\u2026"));
    }
    if (item.buttons && item.buttons.length) {
      var group = el("div", "fd-buttons");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Quick replies");
      item.buttons.forEach(function (b) {
        var button = el("button", "fd-quick", b.title);
        button.type = "button";
        button.disabled = !!item.answered;
        button.addEventListener("click", function () {
          if (item.answered) {
            return;
          }
          item.answered = true;
          persist();
          Array.prototype.forEach.call(group.querySelectorAll("button"), function (other) {
            other.disabled = true;
          });
          send(b.payload, b.title);
        });
        group.appendChild(button);
      });
      row.appendChild(group);
    }
    return row;
  }

  function add(item) {
    history.push(item);
    persist();
    var row = renderItem(item);
    log.appendChild(row);
    scrollDown();
    if (!opened && item.who !== "user" && !inline) {
      unread.hidden = false;
      unread.textContent = "new";
    }
    return row;
  }

  function system(text, status) {
    add({ who: "system", text: text, status: status || "info" });
  }

  function restoreHistory() {
    log.textContent = "";
    if (!history.length) {
      log.appendChild(el("p", "fd-greeting", options.greeting));
    }
    history.forEach(function (item) {
      log.appendChild(renderItem(item));
    });
    scrollDown();
  }

  function markSent(clientId) {
    pending = pending.filter(function (p) {
      return p.client_id !== clientId;
    });
    history.forEach(function (item) {
      if (item.id === clientId) {
        delete item.sending;
      }
    });
    persist();
    var row = log.querySelector('[data-id="' + clientId.replace(/[^a-z0-9-]/gi, "") + '"] .fd-sending');
    if (row) {
      row.parentNode.removeChild(row);
    }
  }

  // ---- connection ----------------------------------------------------------------------------

  function setBanner(text) {
    if (text) {
      bannerText.textContent = text;
      banner.hidden = false;
      root.classList.add("fd-offline");
    } else {
      banner.hidden = true;
      root.classList.remove("fd-offline");
    }
  }

  function setTyping(active, who) {
    clearTimeout(typingTimer);
    typing.hidden = !active;
    typingLabel.textContent = who === "agent" ? "The support agent is typing\u2026" : "The bot is typing\u2026";
    if (active) {
      // an agent's typing signal repeats every few seconds while they type
      typingTimer = setTimeout(function () {
        typing.hidden = true;
      }, who === "agent" ? 6000 : 60000);
    }
  }

  function requestSession(oldToken) {
    var body = {};
    if (oldToken) {
      body.token = oldToken;
    }
    if (userToken) {
      body.user_token = userToken;
    }
    return fetch(base + "/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    }).then(function (response) {
      if (response.status === 401 && userToken) {
        // The site's user token expired or was refused: go on as a guest.
        userToken = null;
        return requestSession(null);
      }
      if (!response.ok) {
        throw new Error("session request failed with HTTP " + response.status);
      }
      return response.json();
    });
  }

  function newSession(oldToken) {
    return requestSession(oldToken).then(function (data) {
      if (session && data.sender !== session.sender) {
        // A new conversation: the old history belongs to a conversation we can no longer see.
        lastSeq = 0;
        pending = [];
        system("A new conversation started (the previous session expired).", "info");
      }
      session = { token: data.token, sender: data.sender };
      save("session", session);
      persist();
      return session;
    });
  }

  function scheduleReconnect(reason) {
    if (stopped) {
      return;
    }
    clearTimeout(reconnectTimer);
    var delay = Math.min(15000, 500 * Math.pow(2, attempt)) * (0.8 + Math.random() * 0.4);
    attempt++;
    var seconds = Math.max(1, Math.round(delay / 1000));
    setBanner((reason || "Cannot reach the server.") + " Reconnecting in " + seconds + " s\u2026");
    reconnectTimer = setTimeout(connect, delay);
  }

  function wsUrl() {
    var url = new URL(base + "/ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (lastSeq > 0) {
      url.searchParams.set("since", String(lastSeq));
    }
    return url.href;
  }

  function connect() {
    if (stopped || connecting || (ws && ws.readyState <= 1)) {
      return; // already connecting or connected
    }
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    connecting = true;
    var ready = session ? Promise.resolve(session) : newSession(null);
    ready.then(openSocket, function () {
      connecting = false;
      scheduleReconnect("Cannot reach the chat server.");
    });
  }

  function openSocket(current) {
    var socket;
    connecting = false;
    try {
      socket = new WebSocket(wsUrl());
    } catch (e) {
      scheduleReconnect("Cannot reach the chat server.");
      return;
    }
    ws = socket;
    var welcomed = false;
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "auth", token: current.token }));
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame.type === "hello") {
        if (typeof frame.last_seq === "number" && frame.last_seq < lastSeq) {
          lastSeq = frame.last_seq; // the server's bus was reset: resume from its end
          persist();
          socket.close();
          return;
        }
        welcomed = true;
        attempt = 0;
        setBanner("");
        root.classList.add("fd-online");
        pending.forEach(function (p) {
          socket.send(JSON.stringify(p));
        });
        clearInterval(pingTimer);
        pingTimer = setInterval(function () {
          if (socket.readyState === WebSocket.OPEN) {
            socket.send('{"type":"ping"}');
          }
        }, 25000);
      } else if (frame.type === "reply") {
        onReply(frame);
      } else if (frame.type === "ack") {
        if (frame.client_id) {
          markSent(frame.client_id);
        }
      } else if (frame.type === "typing") {
        setTyping(!!frame.active, frame.who);
      } else if (frame.type === "error") {
        if (frame.client_id) {
          markSent(frame.client_id);
        }
        setTyping(false);
        var detail = frame.detail || "Your message was refused.";
        if (frame.code === "rate_limited" && frame.retry_after) {
          detail = "You are sending messages too fast; try again in " + frame.retry_after + " s.";
        }
        system(detail, "error");
      }
    };
    socket.onclose = function (event) {
      root.classList.remove("fd-online");
      clearInterval(pingTimer);
      setTyping(false);
      if (ws !== socket) {
        return; // a replaced socket closing late
      }
      ws = null;
      if (stopped) {
        return;
      }
      if (event.code === 4401) {
        // The token expired or the secret changed: ask for a session again (renewal first).
        var old = session ? session.token : null;
        session = null;
        forget("session");
        newSession(old).then(connect, function () {
          scheduleReconnect("Cannot reach the chat server.");
        });
        return;
      }
      scheduleReconnect(welcomed ? "Connection lost." : "Cannot reach the chat server.");
    };
    socket.onerror = function () {
      /* onclose follows and schedules the reconnect */
    };
  }

  function onReply(frame) {
    if (typeof frame.seq !== "number" || frame.seq <= lastSeq) {
      return; // already shown (a replay after a reconnect)
    }
    lastSeq = frame.seq;
    var who = frame.service === "handoff" ? "agent" : "bot"; // a person answering (hand-off)
    add({
      who: who,
      id: frame.id,
      text: frame.text,
      status: frame.status && frame.status !== "ok" ? frame.status : "",
      buttons: (frame.buttons || []).filter(function (b) {
        return b && typeof b.title === "string" && typeof b.payload === "string";
      }),
      image: frame.image || null,
      name: who === "agent" ? "" : frame.bot || "",
      seq: frame.seq,
    });
    if (frame.status !== "working") {
      setTyping(false);
    }
  }

  function send(text, shown) {
    text = String(text || "").trim();
    if (!text) {
      return;
    }
    if (text.length > MAX_CHARS) {
      system("That message is " + text.length + " characters; the limit is " + MAX_CHARS + ".", "error");
      return;
    }
    var clientId = "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
    var frame = { type: "message", text: text, bot: botSelect.value || undefined, client_id: clientId };
    pending.push(frame);
    add({ who: "user", id: clientId, text: shown || text, sending: true });
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(frame));
    } else {
      attempt = 0;
      connect(); // sent from `pending` once the server says hello
    }
  }

  // ---- bots ----------------------------------------------------------------------------------

  function fillBots(list) {
    botSelect.textContent = "";
    list.forEach(function (bot) {
      var option = el("option", "", bot.name);
      option.value = bot.name;
      if (bot.description) {
        option.title = bot.description;
      }
      botSelect.appendChild(option);
    });
    var wanted = load("bot", "") || options.bot;
    if (wanted && list.some(function (b) { return b.name === wanted; })) {
      botSelect.value = wanted;
    }
  }

  function loadBots() {
    var configured = options.bots
      ? options.bots.split(",").map(function (name) {
          return { name: name.trim() };
        }).filter(function (b) { return b.name; })
      : null;
    if (configured) {
      fillBots(configured);
      return;
    }
    fillBots([{ name: options.bot || "chatbot" }]);
    fetch(base + "/api/bots", { credentials: "omit" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (list) {
        if (Array.isArray(list) && list.length) {
          fillBots(list.filter(function (b) { return b && typeof b.name === "string"; }));
        }
      })
      .catch(function () {
        /* keep the default bot; the connection banner reports an unreachable server */
      });
  }

  // ---- open / close, keyboard ----------------------------------------------------------------

  function open() {
    if (opened) {
      return;
    }
    opened = true;
    panel.hidden = false;
    root.classList.add("fd-open");
    bubble.setAttribute("aria-expanded", "true");
    bubble.setAttribute("aria-label", "Close chat");
    unread.hidden = true;
    save("open", true);
    scrollDown();
    input.focus();
  }

  function close() {
    if (!opened || inline) {
      return;
    }
    opened = false;
    panel.hidden = true;
    root.classList.remove("fd-open");
    bubble.setAttribute("aria-expanded", "false");
    bubble.setAttribute("aria-label", "Open chat");
    save("open", false);
    bubble.focus();
  }

  bubble.addEventListener("click", function () {
    if (opened) {
      close();
    } else {
      open();
    }
  });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  retryButton.addEventListener("click", function () {
    attempt = 0;
    connect();
  });
  botSelect.addEventListener("change", function () {
    save("bot", botSelect.value);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    autosize();
    send(text);
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }
  input.addEventListener("input", autosize);
  var typedAt = 0;
  input.addEventListener("input", function () {
    // tell a support agent the user is typing (at most every 3 s; the server ignores the rest)
    var now = Date.now();
    if (input.value && now - typedAt > 3000 && ws && ws.readyState === WebSocket.OPEN) {
      typedAt = now;
      ws.send('{"type":"typing"}');
    }
  });

  // ---- start ---------------------------------------------------------------------------------

  function mount() {
    if (options.css && !document.querySelector('link[data-frontdoor-css]')) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = base + "/widget.css";
      css.setAttribute("data-frontdoor-css", "");
      document.head.appendChild(css);
    }
    (inline || document.body).appendChild(root);
    restoreHistory();
    loadBots();
    if (inline || options.open || load("open", false)) {
      opened = false;
      open();
    }
    connect();
  }

  window.FrontdoorWidget = {
    open: open,
    close: close,
    send: function (text) {
      send(text);
    },
    /**
     * Sign the visitor in with a user token the embedding site signed (docs/security.md); the
     * conversation goes on as that user.
     */
    identify: function (token) {
      userToken = token ? String(token) : null;
      var old = session ? session.token : null;
      newSession(old).then(function () {
        if (ws) {
          ws.close();
        } else {
          connect();
        }
      });
    },
    /** Forget the session and the history on this device (a new conversation). */
    reset: function () {
      ["session", "seq", "history", "pending"].forEach(forget);
      session = null;
      lastSeq = 0;
      history = [];
      pending = [];
      restoreHistory();
      if (ws) {
        ws.close();
      }
    },
    stop: function () {
      stopped = true;
      if (ws) {
        ws.close();
      }
    },
    renderText: renderText,
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount);
  } else {
    mount();
  }
})();
