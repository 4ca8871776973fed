/* Suanwang allocations: the live credit estimate of the request wizard and the fields each kind needs.
   The conversion table (credits per unit of each class, cap of each tier) is rendered into the page as
   JSON by the server; the server recomputes everything when the form is saved. */
(function () {
  "use strict";

  var form = document.querySelector("form[data-credit-estimate]");
  if (!form) return;
  var tableNode = document.getElementById("conversion-table");
  var table = tableNode ? JSON.parse(tableNode.textContent) : { classes: {}, tiers: {} };
  var box = document.getElementById("credit-estimate");
  var totalNode = document.getElementById("credit-total");
  var statusNode = document.getElementById("credit-status");
  var meter = document.getElementById("credit-meter");
  var number = new Intl.NumberFormat(document.documentElement.lang || "zh-CN", { maximumFractionDigits: 2 });

  function fill(template, values) {
    return (template || "").replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : match;
    });
  }

  function checkedValue(name) {
    var checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : "";
  }

  function currentKind() {
    return checkedValue("kind") || form.getAttribute("data-kind") || "";
  }

  // Show the allocation choice for renewals, supplements and extensions, the appealed request for
  // appeals, and no amounts for an extension. Hidden inputs are disabled so they are not sent.
  function toggleKind() {
    var kind = currentKind();
    form.parentNode.querySelectorAll("[data-show-for], [data-hide-for]").forEach(function (node) {
      var showFor = node.getAttribute("data-show-for");
      var hideFor = node.getAttribute("data-hide-for");
      var visible = showFor ? showFor.split(" ").indexOf(kind) !== -1 : hideFor.split(" ").indexOf(kind) === -1;
      node.hidden = !visible;
      node.querySelectorAll("input, select").forEach(function (input) {
        input.disabled = !visible;
      });
    });
  }

  function update() {
    var total = 0;
    form.querySelectorAll("input[data-resource-class]").forEach(function (input) {
      var code = input.getAttribute("data-resource-class");
      var resourceClass = table.classes[code];
      var raw = input.value.trim();
      var amount = raw === "" ? 0 : Number(raw);
      var valid = isFinite(amount) && amount >= 0 && Math.floor(amount) === amount;
      input.classList.toggle("is-invalid", !valid);
      var credits = valid && resourceClass && !input.disabled ? amount * parseFloat(resourceClass.credits_per_unit) : 0;
      total += credits;
      var cell = form.querySelector('[data-credits-for="' + code + '"]');
      if (cell) cell.textContent = credits ? number.format(credits) : "—";
    });
    totalNode.textContent = number.format(total);

    var tier = table.tiers[checkedValue("tier")];
    var over = false;
    var share = 0;
    if (!tier) {
      statusNode.textContent = box.getAttribute("data-msg-choose");
    } else if (tier.cap === null) {
      statusNode.textContent = box.getAttribute("data-msg-nocap");
    } else {
      var cap = parseFloat(tier.cap);
      share = cap > 0 ? (total / cap) * 100 : 0;
      over = total > cap;
      var values = {
        tier: tier.label,
        cap: number.format(cap),
        over: number.format(total - cap),
        pct: number.format(Math.round(share)) + "%"
      };
      statusNode.textContent = fill(box.getAttribute(over ? "data-msg-over" : "data-msg-within"), values);
    }
    box.classList.toggle("is-over", over);
    meter.style.width = Math.min(share, 100).toFixed(1) + "%";
  }

  form.addEventListener("input", update);
  form.addEventListener("change", function (event) {
    if (event.target.name === "kind") toggleKind();
    update();
  });
  toggleKind();
  update();
})();
