/* The segment builder (admin): conditions (field, is / is not, values, with pickers for
 * categories, segments and products) grouped by "all" / "any", written into the rules
 * textarea as the same JSON rule tree that campaigns/segments.py validates. The textarea
 * stays as the advanced view: editing it rebuilds the form when the builder can show
 * the tree. Everything the builder knows comes from the JSON in
 * <script id="segment-builder-schema"> (campaigns/segment_builder.py). No libraries,
 * no inline script (the admin runs under a strict CSP). */
(function () {
  "use strict";

  var schema, area, rulesByName = {}, root, box, rowPaths = [], syncing = false, notice, errorsBox;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else if (k === "className") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } });
    return node;
  }
  function clone(v) { return v === undefined ? undefined : JSON.parse(JSON.stringify(v)); }
  function isInt(v) { return typeof v === "number" && Math.floor(v) === v; }
  function isList(v, test) { return Array.isArray(v) && v.every(test); }

  // --- model <-> rule tree --------------------------------------------------------------
  function newGroup(op) { return {type: "group", op: op || "all", negate: false, children: []}; }
  function newRule(name) {
    var rule = rulesByName[name];
    return {type: "rule", rule: name, negate: false, params: clone(rule.defaults) || {}};
  }
  function fromTree(node) {
    if (!node || typeof node !== "object" || Array.isArray(node)) { return null; }
    var keys = Object.keys(node);
    if (keys.length === 1 && keys[0] === "not") {
      var inner = fromTree(node.not);
      if (inner) { inner.negate = !inner.negate; }
      return inner;
    }
    if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any")) {
      if (!Array.isArray(node[keys[0]])) { return null; }
      var group = newGroup(keys[0]);
      for (var i = 0; i < node[keys[0]].length; i++) {
        var child = fromTree(node[keys[0]][i]);
        if (!child) { return null; }
        group.children.push(child);
      }
      return group;
    }
    var rule = rulesByName[node.rule];
    if (!rule) { return null; }
    var params = {};
    for (var k in node) {
      if (k === "rule") { continue; }
      if (rule.params.indexOf(k) < 0) { return null; }
      params[k] = node[k];
    }
    return {type: "rule", rule: node.rule, negate: false, params: params};
  }
  function isEmpty(m) {
    return m.type === "group" && m.children.every(isEmpty);
  }
  function cleanParams(m) {
    var out = {rule: m.rule};
    rulesByName[m.rule].params.forEach(function (p) {
      var v = m.params[p];
      if (v === undefined || v === null || v === "" || (Array.isArray(v) && !v.length)) { return; }
      out[p] = v;
    });
    return out;
  }
  function join(base, key) { return base ? base + "." + key : key; }
  // The tree of model `m` whose path in the tree is `path`; records each row's path.
  function toTree(m, path) {
    var own = m.negate ? join(path, "not") : path, tree;
    if (m.type === "group") {
      var kids = m.children.filter(function (c) { return !isEmpty(c); });
      tree = {};
      tree[m.op] = kids.map(function (c, i) { return toTree(c, join(own, m.op + "[" + i + "]")); });
    } else {
      tree = cleanParams(m);
    }
    if (m.row) { rowPaths.push({path: own, row: m.row}); }
    return m.negate ? {not: tree} : tree;
  }

  function write() {
    rowPaths = [];
    var value = isEmpty(root) ? "" : JSON.stringify(toTree(root, ""), null, 2);
    if (value === area.value) { return; }
    syncing = true;
    area.value = value;
    area.dispatchEvent(new Event("input", {bubbles: true}));
    syncing = false;
  }
  function changed() { write(); }

  // --- inputs, one per parameter kind ------------------------------------------------------
  var fits = {
    int: function (v) { return isInt(v); },
    bool: function (v) { return typeof v === "boolean"; },
    category: function (v) { return typeof v === "string" || isInt(v); },
    segment: function (v) { return isInt(v); },
    seed: function (v) { return v && typeof v === "object" && Object.keys(v).length === 1 && isInt(v.segment); },
    strings: function (v) { return isList(v, function (x) { return typeof x === "string"; }); },
    ints: function (v) { return isList(v, isInt); },
    scores: function (v) { return isList(v, function (x) { return isInt(x) && x >= 1 && x <= 5; }); },
    product: function (v) { return isInt(v); },
    choice: function () { return true; },
    json: function () { return true; }
  };

  function select(options, value, placeholder, label) {
    var s = el("select", {"aria-label": label});
    if (placeholder) { s.appendChild(el("option", {value: "", text: placeholder})); }
    options.forEach(function (o) {
      var opt = el("option", {value: String(o.value), text: o.label});
      if (value !== undefined && value !== null && String(o.value) === String(value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    return s;
  }

  function input(m, spec) {
    var name = spec.name, value = m.params[name], kind = spec.kind;
    if (value !== undefined && !fits[kind](value)) { kind = "json"; }
    var wrap = el("label", {className: "sb-param sb-" + kind, "data-param": name});
    function set(v) { m.params[name] = v; changed(); }
    var field;
    if (kind === "int") {
      wrap.appendChild(document.createTextNode(spec.label + " "));
      field = el("input", {type: "number", min: "1", step: "1", value: value === undefined ? "" : String(value), "aria-label": spec.label});
      field.addEventListener("input", function () {
        var n = field.value.trim() === "" ? undefined : Number(field.value);
        set(n === undefined || !isFinite(n) ? (field.value.trim() === "" ? undefined : field.value) : n);
      });
    } else if (kind === "bool") {
      field = el("input", {type: "checkbox"});
      field.checked = value === true;
      field.addEventListener("change", function () { set(field.checked ? true : (name === "value" ? false : undefined)); });
      wrap.appendChild(field);
      wrap.appendChild(document.createTextNode(" " + spec.label));
      return wrap;
    } else if (kind === "category") {
      var cat = value;
      if (isInt(value)) {
        var byId = schema.categories.filter(function (c) { return c.id === value; })[0];
        cat = byId ? byId.value : value;
      }
      field = select(schema.categories, cat, "— choose a category —", "category");
      field.addEventListener("change", function () { set(field.value || undefined); });
    } else if (kind === "segment" || kind === "seed") {
      var current = kind === "seed" ? (value || {}).segment : value;
      wrap.appendChild(document.createTextNode(spec.label + " "));
      field = select(schema.segments, current, "— choose a segment —", spec.label);
      field.addEventListener("change", function () {
        var id = field.value ? Number(field.value) : undefined;
        set(id === undefined ? undefined : (kind === "seed" ? {segment: id} : id));
      });
    } else if (kind === "choice") {
      wrap.appendChild(document.createTextNode(spec.label + " "));
      field = select(spec.choices, value, "— choose —", spec.label);
      field.addEventListener("change", function () {
        var hit = spec.choices.filter(function (c) { return String(c.value) === field.value; })[0];
        set(hit ? hit.value : undefined);
      });
    } else if (kind === "strings" || kind === "ints") {
      wrap.appendChild(document.createTextNode(spec.label + " "));
      field = el("input", {type: "text", size: "28", value: (value || []).join(", "), placeholder: "comma-separated", "aria-label": spec.label});
      field.addEventListener("input", function () {
        var parts = field.value.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
        set(kind === "ints" ? parts.map(function (x) { return /^\d+$/.test(x) ? Number(x) : x; }) : parts);
      });
    } else if (kind === "scores") {
      wrap = el("span", {className: "sb-param sb-scores", "data-param": name, role: "group", "aria-label": spec.label}, [spec.label + " "]);
      [1, 2, 3, 4, 5].forEach(function (score) {
        var box = el("input", {type: "checkbox", value: String(score), "aria-label": spec.label + " " + score});
        box.checked = (value || []).indexOf(score) >= 0;
        box.addEventListener("change", function () {
          set(Array.prototype.filter.call(wrap.querySelectorAll("input"), function (b) { return b.checked; })
            .map(function (b) { return Number(b.value); }));
        });
        wrap.appendChild(el("label", {className: "sb-score"}, [box, String(score)]));
      });
      return wrap;
    } else if (kind === "product") {
      var listId = "sb-products-" + Math.random().toString(36).slice(2);
      wrap.appendChild(document.createTextNode(spec.label + " "));
      field = el("input", {type: "search", list: listId, size: "32", placeholder: "type a product name or SKU", "aria-label": spec.label});
      var list = el("datalist", {id: listId});
      wrap.appendChild(list);
      var timer = null;
      var fetchProducts = function (query, then) {
        fetch(schema.product_url + "?" + query, {credentials: "same-origin"})
          .then(function (r) { return r.json(); }).then(function (d) { then(d.results || []); })
          .catch(function () { then([]); });
      };
      if (isInt(value)) {
        fetchProducts("ids=" + value, function (rows) { field.value = rows.length ? rows[0].label + " · #" + rows[0].value : "#" + value; });
      }
      field.addEventListener("input", function () {
        var hit = /#(\d+)$/.exec(field.value);
        if (hit) { set(Number(hit[1])); return; }
        set(undefined);
        clearTimeout(timer);
        timer = setTimeout(function () {
          fetchProducts("q=" + encodeURIComponent(field.value), function (rows) {
            list.textContent = "";
            rows.forEach(function (p) { list.appendChild(el("option", {value: p.label + " · #" + p.value})); });
          });
        }, 250);
      });
    } else {
      wrap.appendChild(document.createTextNode(spec.label + " "));
      field = el("input", {type: "text", size: "24", value: value === undefined ? "" : (typeof value === "string" ? value : JSON.stringify(value)), "aria-label": spec.label});
      field.addEventListener("input", function () {
        var text = field.value.trim(), v;
        if (text === "") { v = undefined; } else { try { v = JSON.parse(text); } catch (e) { v = text; } }
        set(v);
      });
    }
    wrap.appendChild(field);
    return wrap;
  }

  // --- rows and groups ------------------------------------------------------------------
  function removeButton(parent, m) {
    var b = el("button", {type: "button", className: "sb-remove", title: "Remove", "aria-label": "Remove", text: "✕"});
    b.addEventListener("click", function () {
      parent.children.splice(parent.children.indexOf(m), 1);
      render();
    });
    return b;
  }
  function negateSelect(m, yes, no) {
    var s = select([{value: "", label: yes}, {value: "not", label: no}], m.negate ? "not" : "", null, "is or is not");
    s.className = "sb-negate";
    s.addEventListener("change", function () { m.negate = s.value === "not"; changed(); });
    return s;
  }
  function ruleRow(parent, m) {
    var row = el("div", {className: "sb-row"});
    var field = select(schema.rules.map(function (r) { return {value: r.name, label: r.label}; }), m.rule, null, "field");
    field.className = "sb-field";
    field.addEventListener("change", function () {
      var fresh = newRule(field.value);
      m.rule = fresh.rule; m.params = fresh.params;
      render();
    });
    var rule = rulesByName[m.rule];
    row.appendChild(field);
    row.appendChild(negateSelect(m, "is", "is not"));
    var params = el("span", {className: "sb-params"});
    rule.inputs.forEach(function (spec) { params.appendChild(input(m, spec)); });
    row.appendChild(params);
    row.appendChild(removeButton(parent, m));
    if (rule.help) { row.appendChild(el("span", {className: "help sb-help", text: rule.help})); }
    row.appendChild(el("ul", {className: "errorlist sb-errors"}));
    m.row = row;
    return row;
  }
  function addButtons(group) {
    var add = el("button", {type: "button", className: "button sb-add", text: "+ Add condition"});
    add.addEventListener("click", function () { group.children.push(newRule(schema.rules[0].name)); render(); });
    var nest = el("button", {type: "button", className: "button sb-add-group", text: "+ Add group"});
    nest.addEventListener("click", function () {
      var g = newGroup(group.op === "all" ? "any" : "all");
      g.children.push(newRule(schema.rules[0].name));
      group.children.push(g);
      render();
    });
    return el("div", {className: "sb-actions"}, [add, " ", nest]);
  }
  function opSelect(group) {
    var s = select([{value: "all", label: "all"}, {value: "any", label: "any"}], group.op, null, "all or any");
    s.className = "sb-op";
    s.addEventListener("change", function () { group.op = s.value; changed(); });
    return s;
  }
  function groupBox(parent, g) {
    var node = el("div", {className: "sb-group"});
    var head = el("div", {className: "sb-group-head"}, [
      negateSelect(g, "Match", "Do not match"), " ", opSelect(g), " of:", removeButton(parent, g)
    ]);
    head.appendChild(el("ul", {className: "errorlist sb-errors"}));
    node.appendChild(head);
    g.row = head;
    g.children.forEach(function (c) { node.appendChild(c.type === "group" ? groupBox(g, c) : ruleRow(g, c)); });
    node.appendChild(addButtons(g));
    return node;
  }

  function render() {
    box.textContent = "";
    var head = el("p", {className: "sb-root-head"}, ["Customers who match ", opSelect(root), " of these conditions:"]);
    box.appendChild(head);
    var list = el("div", {className: "sb-list"});
    root.children.forEach(function (c) { list.appendChild(c.type === "group" ? groupBox(root, c) : ruleRow(root, c)); });
    if (!root.children.length) {
      list.appendChild(el("p", {className: "help sb-empty", text: "No conditions yet: add one, or start from an example."}));
    }
    box.appendChild(list);
    box.appendChild(addButtons(root));
    write();
  }

  function load(text) {
    text = (text || "").trim();
    var tree = null;
    if (text) {
      try { tree = JSON.parse(text); } catch (e) { return false; }
    }
    var m = tree ? fromTree(tree) : newGroup("all");
    if (!m) { return false; }
    if (m.type !== "group" || m.negate) { var g = newGroup("all"); g.children.push(m); m = g; }
    root = m;
    return true;
  }

  function showErrors(messages) {
    Array.prototype.forEach.call(box.querySelectorAll(".sb-errors"), function (ul) { ul.textContent = ""; });
    Array.prototype.forEach.call(box.querySelectorAll(".sb-row-error"), function (r) { r.classList.remove("sb-row-error"); });
    if (!rowPaths.length) { rowPaths = []; toTree(root, ""); }
    (messages || []).forEach(function (msg) {
      var best = null;
      rowPaths.forEach(function (rp) {
        if (msg.indexOf(rp.path + ":") === 0 || msg.indexOf(rp.path + ".") === 0) {
          if (!best || rp.path.length > best.path.length) { best = rp; }
        }
      });
      if (best) {
        best.row.classList.add("sb-row-error");
        best.row.querySelector(".sb-errors").appendChild(el("li", {text: msg}));
      }
    });
  }

  function init() {
    var source = document.getElementById("segment-builder-schema");
    area = document.querySelector("textarea[data-segment-rules]");
    if (!source || !area) { return; }
    schema = JSON.parse(source.textContent);
    schema.rules.forEach(function (r) { rulesByName[r.name] = r; });
    var row = area.closest(".form-row") || area.parentElement;
    var fieldset = el("fieldset", {className: "module aligned segment-builder", id: "segment-builder"});
    fieldset.appendChild(el("h2", {text: "Conditions"}));
    errorsBox = el("div", {className: "sb-form-errors"});
    var serverErrors = row.querySelector(".errorlist");
    if (serverErrors) { errorsBox.appendChild(serverErrors.cloneNode(true)); }
    fieldset.appendChild(errorsBox);
    if (schema.examples.length) {
      var examples = el("p", {className: "sb-examples"}, ["Start from an example: "]);
      schema.examples.forEach(function (ex) {
        var b = el("button", {type: "button", className: "button sb-example", text: ex.label});
        b.addEventListener("click", function () { load(JSON.stringify(ex.rules)); notice.hidden = true; box.hidden = false; render(); });
        examples.appendChild(b);
        examples.appendChild(document.createTextNode(" "));
      });
      fieldset.appendChild(examples);
    }
    notice = el("p", {className: "sb-notice", hidden: "hidden", text: "These rules use something the builder cannot show: edit them as JSON below (the live count still follows)."});
    fieldset.appendChild(notice);
    box = el("div", {className: "sb-root"});
    fieldset.appendChild(box);
    var details = el("details", {className: "segment-json"}, [el("summary", {text: "Advanced: the rules as JSON"})]);
    row.parentNode.insertBefore(fieldset, row);
    row.parentNode.insertBefore(details, row);
    details.appendChild(row);
    if (load(area.value)) {
      render();
    } else {
      notice.hidden = false; box.hidden = true; details.open = true;
      root = newGroup("all");
    }
    area.addEventListener("input", function () {
      if (syncing) { return; }
      if (load(area.value)) { notice.hidden = true; box.hidden = false; render(); } else { notice.hidden = false; box.hidden = true; }
    });
    document.addEventListener("segment-preview", function (e) { showErrors(e.detail.errors); });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
