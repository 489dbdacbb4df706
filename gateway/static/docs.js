// Renders /v1/openapi.json as a readable list of endpoints (no CDN, so no Swagger UI).
"use strict";

function node(tag, text, className) {
  const element = document.createElement(tag);
  if (text !== undefined) element.textContent = text;
  if (className) element.className = className;
  return element;
}

async function render() {
  const target = document.getElementById("endpoints");
  let spec;
  try {
    spec = await (await fetch("/v1/openapi.json")).json();
  } catch (err) {
    target.replaceChildren(node("p", `Could not load /v1/openapi.json: ${err.message}`, "error"));
    return;
  }
  const items = [];
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const block = node("div", undefined, "endpoint");
      const title = node("h2");
      title.append(node("span", method.toUpperCase(), "method"), node("code", path));
      block.append(title, node("p", op.summary || ""));
      const params = (op.parameters || []).map((p) => `${p.name} (${p.in})${p.description ? ": " + p.description : ""}`);
      const form = op.requestBody && op.requestBody.content["multipart/form-data"];
      if (form) params.push(`multipart fields: ${Object.keys(form.schema.properties).join(", ")}`);
      if (params.length) {
        const list = node("ul");
        for (const text of params) list.append(node("li", text));
        block.append(list);
      }
      const answers = Object.entries(op.responses).map(([status, r]) => `${status}: ${r.description}`);
      block.append(node("p", `Answers ${answers.join("; ")}.`, "hint"));
      items.push(block);
    }
  }
  target.replaceChildren(...items);
}

render();
