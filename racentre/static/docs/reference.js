// The interactive API reference: renders /api/v1/openapi.json (OpenAPI 3.1) and sends "try it" requests
// to this same service (same origin; the bearer token stays in this page's memory). No outside code.
"use strict";
(function () {
  const api = document.getElementById("api");
  const info = document.getElementById("info");
  const tokenInput = document.getElementById("token");
  const filterInput = document.getElementById("filter");
  let doc = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function resolve(schema, depth) {
    if (!schema || depth > 6) return schema;
    if (schema.$ref) {
      const name = schema.$ref.split("/").pop();
      return resolve(doc.components.schemas[name], depth + 1);
    }
    if (Array.isArray(schema)) return schema.map((s) => resolve(s, depth + 1));
    if (typeof schema === "object") {
      const out = {};
      for (const [k, v] of Object.entries(schema)) out[k] = typeof v === "object" ? resolve(v, depth + 1) : v;
      return out;
    }
    return schema;
  }
  function json(value) { return el("pre", {}, JSON.stringify(value, null, 2)); }

  function exampleOf(media) {
    if (!media) return "";
    if (media.example !== undefined) return JSON.stringify(media.example, null, 2);
    const schema = resolve(media.schema, 0) || {};
    if (schema.examples && schema.examples.length) return JSON.stringify(schema.examples[0], null, 2);
    return "{}";
  }

  function tryIt(method, path, op) {
    const form = el("div", { class: "try" });
    const inputs = {};
    for (const p of op.parameters || []) {
      const input = el("input", { type: "text", placeholder: p.example !== undefined ? String(p.example) : "" });
      if (p.example !== undefined && p.in === "path") input.value = String(p.example);
      inputs[p.name] = [p, input];
      form.append(el("label", {}, `${p.name} (${p.in}${p.required ? ", 必填" : ""})`, input));
    }
    const content = (op.requestBody && op.requestBody.content) || {};
    const jsonMedia = content["application/json"];
    const otherTypes = Object.keys(content).filter((t) => t !== "application/json");
    let bodyBox = null;
    let fileBox = null;
    if (jsonMedia) {
      bodyBox = el("textarea", {});
      bodyBox.value = exampleOf(jsonMedia);
      form.append(el("label", {}, "请求体 application/json", bodyBox));
    } else if (otherTypes.length && !otherTypes.some((t) => t.startsWith("multipart/") || t.includes("form-urlencoded"))) {
      fileBox = el("input", { type: "file" });
      form.append(el("label", {}, `请求体 (${otherTypes[0]})`, fileBox));
    }
    const out = el("div", {});
    const button = el("button", { type: "button" }, "试一试 · Send");
    button.addEventListener("click", async () => {
      let url = path;
      const query = new URLSearchParams();
      for (const [name, [p, input]] of Object.entries(inputs)) {
        if (!input.value) continue;
        if (p.in === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
        else if (p.in === "query") query.set(name, input.value);
      }
      if (query.toString()) url += "?" + query.toString();
      const headers = {};
      if (tokenInput.value) headers.Authorization = "Bearer " + tokenInput.value.trim();
      const init = { method: method.toUpperCase(), headers, credentials: "same-origin" };
      if (bodyBox) { headers["Content-Type"] = "application/json"; init.body = bodyBox.value; }
      if (fileBox && fileBox.files.length) { headers["Content-Type"] = otherTypes[0]; init.body = fileBox.files[0]; }
      out.replaceChildren(el("p", {}, "…"));
      try {
        const r = await fetch(url, init);
        const type = r.headers.get("Content-Type") || "";
        let text;
        if (/json|text|pem/.test(type)) text = await r.text();
        else { const b = await r.arrayBuffer(); text = `(${b.byteLength} bytes of ${type})`; }
        try { if (type.includes("json")) text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as is */ }
        out.replaceChildren(el("p", {}, el("span", { class: r.ok ? "status-ok" : "status-err" }, `HTTP ${r.status}`),
          ` ${type}`), el("pre", {}, text.slice(0, 20000)));
      } catch (e) {
        out.replaceChildren(el("p", { class: "status-err" }, String(e)));
      }
    });
    form.append(button, out);
    return form;
  }

  function operation(path, method, op) {
    const roles = op["x-roles"];
    const badge = roles && roles.length ? el("span", { class: "roles" }, "角色: " + roles.join(", "))
      : el("span", { class: "roles public" }, op.security && op.security.length ? "已登录" : "公开 public");
    const head = el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()),
      el("span", { class: "path" }, path), el("span", { class: "summary" }, op.summary || ""), badge);
    const body = el("div", { class: "body" });
    if (op.description) body.append(el("p", {}, op.description));
    if (op.parameters && op.parameters.length) {
      const table = el("table", {}, el("tr", {}, el("th", {}, "参数"), el("th", {}, "位置"), el("th", {}, "模式"),
        el("th", {}, "说明")));
      for (const p of op.parameters) {
        table.append(el("tr", {}, el("td", {}, p.name + (p.required ? " *" : "")), el("td", {}, p.in),
          el("td", {}, JSON.stringify(p.schema)), el("td", {}, p.description || "")));
      }
      body.append(el("h4", {}, "Parameters"), table);
    }
    if (op.requestBody) {
      for (const [type, media] of Object.entries(op.requestBody.content || {})) {
        body.append(el("h4", {}, `Request body — ${type}`), json(resolve(media.schema, 0) || {}));
        if (media.example !== undefined) body.append(el("h4", {}, "Example"), json(media.example));
      }
    }
    const responses = el("table", {}, el("tr", {}, el("th", {}, "状态"), el("th", {}, "说明"), el("th", {}, "类型")));
    for (const [code, r] of Object.entries(op.responses || {})) {
      responses.append(el("tr", {}, el("td", {}, code), el("td", {}, r.description || ""),
        el("td", {}, Object.keys(r.content || {}).join(", "))));
    }
    body.append(el("h4", {}, "Responses"), responses);
    const details = el("details", { class: "op" }, head, body);
    details.dataset.search = `${method} ${path} ${op.summary || ""} ${(roles || []).join(" ")} ${(op.tags || []).join(" ")}`.toLowerCase();
    details.addEventListener("toggle", () => {
      if (details.open && !details.dataset.tried) { details.dataset.tried = "1"; body.append(el("h4", {}, "试一试"), tryIt(method, path, op)); }
    }, { once: false });
    return details;
  }

  function render() {
    info.replaceChildren(`${doc.info.title} · OpenAPI ${doc.openapi} · v${doc.info.version} · `,
      el("a", { href: "openapi.json" }, "openapi.json"));
    const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
    let count = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const tag = (op.tags || ["Other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
        byTag.get(tag).ops.push(operation(path, method, op));
        count += 1;
      }
    }
    for (const { tag, ops } of byTag.values()) {
      if (!ops.length) continue;
      api.append(el("section", { class: "tag" }, el("h2", {}, `${tag.name} (${ops.length})`),
        el("p", {}, tag.description || ""), ...ops));
    }
    info.append(` · ${count} operations`);
  }

  filterInput.addEventListener("input", () => {
    const q = filterInput.value.trim().toLowerCase();
    for (const d of api.querySelectorAll("details.op")) d.style.display = !q || d.dataset.search.includes(q) ? "" : "none";
  });

  fetch("openapi.json", { credentials: "same-origin" }).then((r) => r.json()).then((d) => { doc = d; render(); })
    .catch((e) => { info.textContent = "无法加载 OpenAPI 文档: " + e; });
})();
