/*
 * smallwins progress card: a web component, no framework, no build step.
 *
 *   <script src="https://wins.example/widget.js" data-member="42" async></script>
 * or
 *   <script src="https://wins.example/widget.js" defer></script>
 *   <smallwins-card member="42" token="(optional signed member token)">fallback text</smallwins-card>
 *
 * It reads GET {api}/api/members/{id}/widget.json (schema smallwins.widget/1). When the API is
 * down it shows the last card it saw (public cards only, marked as offline) or a short notice and
 * the element's own fallback content, with a button to try again. Text is set with textContent
 * only: member-supplied names can never inject markup.
 */
(() => {
  "use strict";
  const script = document.currentScript;
  const scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : location.origin;

  // <script data-member> puts a card right after itself: each such tag on a page gets its own.
  const placeCard = () => {
    if (!script || !script.dataset.member) return;
    const card = document.createElement("smallwins-card");
    card.setAttribute("member", script.dataset.member);
    if (script.dataset.token) card.setAttribute("token", script.dataset.token);
    card.setAttribute("api", script.dataset.api || scriptOrigin);
    script.after(card);
  };
  if (customElements.get("smallwins-card")) { // another tag loaded the script first
    placeCard();
    return;
  }
  const TIMEOUT_MS = 6000;
  const SCHEMA = "smallwins.widget/1";

  const CSS = `
    :host{display:block;max-width:26rem;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
      color:#1b1f24;line-height:1.4}
    .card{background:#fff;border:1px solid #c4cad3;border-radius:10px;padding:1rem 1.1rem}
    h2{font-size:1.15rem;margin:0}
    h3{font-size:.95rem;margin:1rem 0 .4rem}
    .meta,.muted{color:#475467;margin:.2rem 0 0;font-size:.9rem}
    ul{list-style:none;margin:0;padding:0}
    .badges{display:flex;flex-wrap:wrap;gap:.5rem}
    .badge{display:flex;flex-direction:column;align-items:center;width:5.6rem;padding:.35rem;border-radius:8px;
      text-align:center;font-size:.8rem;position:relative}
    .badge:focus{outline:3px solid #0b57d0;outline-offset:2px}
    .badge:hover,.badge:focus{background:#eef2f8}
    .badge img{width:48px;height:48px}
    .badge .tier{color:#475467}
    .desc{position:absolute;left:0;top:100%;z-index:2;width:12rem;background:#1b1f24;color:#fff;padding:.45rem;
      border-radius:6px;font-size:.8rem;text-align:left;display:none}
    .badge:hover .desc,.badge:focus .desc{display:block}
    .bar{height:.55rem;background:#e4e7ec;border-radius:99px;overflow:hidden;margin:.2rem 0}
    .fill{height:100%;background:#0b57d0}
    .step{margin:.45rem 0}
    .step .label{font-weight:600;font-size:.9rem}
    .step .text{font-size:.85rem;color:#475467}
    .notice{background:#fff4e5;border:1px solid #b54708;color:#7a2e0e;border-radius:6px;padding:.5rem;margin:.6rem 0 0;
      font-size:.85rem}
    button{font:inherit;font-size:.85rem;margin-top:.5rem;padding:.3rem .8rem;border-radius:6px;border:1px solid #0b57d0;
      background:#fff;color:#0b57d0;cursor:pointer}
    button:focus{outline:3px solid #0b57d0;outline-offset:2px}
    .fallback{margin:.6rem 0 0}
    .sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
  `;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function day(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  let uid = 0;

  class SmallwinsCard extends HTMLElement {
    static get observedAttributes() { return ["member", "token", "api"]; }

    connectedCallback() {
      if (!this.shadowRoot) this.attachShadow({ mode: "open" });
      this.load();
    }

    attributeChangedCallback() { if (this.shadowRoot && this.isConnected) this.load(); }

    get api() {
      const given = this.getAttribute("api");
      return (given ? given : scriptOrigin).replace(/\/+$/, "");
    }

    show(...nodes) {
      const root = this.shadowRoot;
      root.replaceChildren(h("style", {}, CSS), ...nodes);
    }

    async load() {
      const member = (this.getAttribute("member") || "").trim();
      const token = this.getAttribute("token");
      if (!/^\d+$/.test(member)) {
        this.down("No member given to this card.");
        return;
      }
      this.dataset.state = "loading";
      this.show(h("div", { class: "card", "aria-busy": "true" }, h("p", { role: "status" }, "Loading progress…")));
      const key = `smallwins-card:${this.api}:${member}`;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
      try {
        const response = await fetch(`${this.api}/api/members/${member}/widget.json`, {
          headers: token ? { Authorization: `Bearer ${token}` } : {},
          credentials: "omit",
          signal: controller.signal,
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          const error = new Error(body.error || `the server answered ${response.status}`);
          error.status = response.status;
          throw error;
        }
        const doc = await response.json();
        if (!doc || typeof doc.schema !== "string" || doc.schema.split("/")[0] !== SCHEMA.split("/")[0]) {
          throw new Error("the server sent a card this widget does not understand");
        }
        if (!token) {
          try { localStorage.setItem(key, JSON.stringify({ at: Date.now(), doc })); } catch (_) { /* private mode */ }
        }
        this.card(doc, null);
      } catch (error) {
        let saved = null;
        if (!token && !(error && error.status && error.status < 500)) {
          try { saved = JSON.parse(localStorage.getItem(key) || "null"); } catch (_) { saved = null; }
        }
        if (saved && saved.doc) this.card(saved.doc, saved.at);
        else this.down(error && error.status && error.status < 500 ? error.message : "");
      } finally {
        clearTimeout(timer);
      }
    }

    card(doc, staleSince) {
      const id = `swc${++uid}`;
      const m = doc.member || {};
      const rank = m.rank ? `rank #${m.rank}` : "not ranked";
      const badges = (doc.badges || []).map((b, i) =>
        h("li", { class: "badge", tabindex: "0", "aria-describedby": `${id}-b${i}` },
          h("img", { src: b.icon, alt: b.alt || `${b.name} badge`, width: 48, height: 48, loading: "lazy" }),
          h("span", { class: "name" }, b.name),
          b.tier ? h("span", { class: "tier" }, b.tier) : null,
          h("span", { class: "desc", id: `${id}-b${i}`, role: "tooltip" },
            `${b.description} ${b.rarity_text ? `(${b.rarity_text})` : ""} Earned ${day(b.earned_at)}.`)));
      const parts = [
        h("h2", { id: `${id}-title` }, m.name || "Member"),
        h("p", { class: "meta" }, `${m.points ?? 0} points · ${rank} · ${(doc.badges || []).length} of ${doc.achievements_total ?? "?"} badges`),
        h("h3", {}, "Badges"),
        badges.length ? h("ul", { class: "badges" }, badges) : h("p", { class: "muted" }, "No badges yet: the first one is close."),
      ];
      const s = doc.streak;
      if (s) {
        const unit = s.unit || "day";
        const plural = (n) => `${n} ${unit}${n === 1 ? "" : "s"}`;
        let text = s.current ? `${plural(s.current)} in a row (longest ${s.longest}).`
          : `No streak running right now (longest ${plural(s.longest)}).`;
        if (s.left === 1) text += ` Act today to keep it going.`;
        else if (s.left) text += ` Act within ${plural(s.left)} to keep it going.`;
        parts.push(h("h3", {}, "Streak"), h("p", { class: "streak" }, text));
      }
      const steps = (doc.progress || []).slice(0, 4).map((p) => {
        const pct = p.target ? Math.min(100, Math.round((100 * p.current) / p.target)) : 0;
        const label = p.earned && p.next_tier ? `${p.name} → ${p.next_tier}` : p.name;
        return h("li", { class: "step" },
          h("span", { class: "label", id: `${id}-p-${p.id}` }, label),
          h("div", { class: "bar", role: "progressbar", "aria-labelledby": `${id}-p-${p.id}`,
                     "aria-valuemin": 0, "aria-valuemax": p.target, "aria-valuenow": p.current,
                     "aria-valuetext": p.text },
            h("div", { class: "fill", style: `width:${pct}%` })),
          h("span", { class: "text" }, p.text));
      });
      if (steps.length) parts.push(h("h3", {}, "Next"), h("ul", { class: "progress" }, steps));
      const open = (doc.vouchers || []).filter((v) => v.status === "open");
      if (open.length) {
        parts.push(h("h3", {}, "Vouchers to claim"), h("ul", { class: "vouchers" },
          open.map((v) => h("li", {}, h("code", {}, v.code), ` ${v.name}, until ${day(v.expires_at)}`))));
      }
      if (staleSince) {
        const retry = h("button", { type: "button" }, "Try again");
        retry.addEventListener("click", () => this.load());
        parts.push(h("p", { class: "notice", role: "status" },
          `Offline: showing progress as of ${day(new Date(staleSince).toISOString())}.`), retry);
      }
      this.dataset.state = staleSince ? "stale" : "ready";
      this.show(h("section", { class: "card", role: "region", "aria-labelledby": `${id}-title` }, parts));
    }

    down(reason) {
      const retry = h("button", { type: "button" }, "Try again");
      retry.addEventListener("click", () => this.load());
      this.dataset.state = "down";
      this.show(h("section", { class: "card", role: "region", "aria-label": "Community progress" },
        h("p", { class: "notice", role: "status" },
          reason ? `Progress is not available: ${reason}` : "Progress is not available right now. Please try again later."),
        h("div", { class: "fallback" }, h("slot", {})), retry));
    }
  }

  customElements.define("smallwins-card", SmallwinsCard);
  placeCard();
})();
