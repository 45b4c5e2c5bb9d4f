/* riskmap warning-map helpers: popups, feature layers, township filter and search, legends.
 * Part of riskmap (Apache-2.0).  Plain JavaScript, no dependency but Leaflet; nothing is fetched.
 * Every text that comes from data goes through esc() (or textContent) before reaching the DOM.
 */
(function (global) {
  "use strict";
  var RM = global.riskmap || {};
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"};

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g, function (c) {
      return ESC[c];
    });
  }

  function fmt(value) {
    if (value === null || value === undefined || value === "") { return "—"; }
    var n = Number(value);
    if (!isFinite(n)) { return String(value); }
    return n.toLocaleString("en-US", {maximumFractionDigits: 1});
  }

  function row(label, value) {
    return "<tr><th>" + esc(label) + "</th><td>" + esc(value) + "</td></tr>";
  }

  RM.esc = esc;
  RM.registry = RM.registry || {};

  /* Popup of one village; p holds the compact properties written by riskmap.maps.warning_map. */
  RM.villagePopup = function (p, cfg) {
    var lv = cfg.levels[p.l] || cfg.levels[0];
    var html = "<div class=\"rm-popup\"><div class=\"rm-popup-title\">" + esc(p.n) +
      " <span class=\"rm-code\">" + esc(p.c) + "</span></div><table>";
    if (p.t) { html += row("乡镇 Township", p.t); }
    html += "<tr><th>预警等级 Level</th><td><span class=\"rm-swatch\" style=\"background:" + esc(lv.hex) +
      "\"></span>" + esc(lv.label) + "</td></tr>";
    if (p.h) { html += row("风险 Hazards", String(p.h).split(";").join("; ")); }
    if (p.r) { html += row("原因 Reasons", p.r); }
    if (p.s !== null && p.s !== undefined && p.s !== "") { html += row("得分 Score", fmt(p.s)); }
    (p.w || []).forEach(function (w) {
      html += row("预计雨量 Rain " + w[0], w[1] === null ? "—" : Number(w[1]).toFixed(1) + " mm");
    });
    html += row("人口 Population", fmt(p.p));
    html += row("户数 Households", fmt(p.hh));
    html += row("联系人 Contacts", fmt(p.k));
    if (p.a !== null && p.a !== undefined && p.a !== "") { html += row("确认 Acknowledged", p.a); }
    return html + "</table></div>";
  };

  RM.villageStyle = function (cfg) {
    return function (feature) {
      var lv = cfg.levels[feature.properties.l] || cfg.levels[0];
      return {color: cfg.stroke, weight: cfg.weight, opacity: 0.9, fill: true,
        fillColor: lv.hex, fillOpacity: lv.fill};
    };
  };

  RM.villageLayer = function (data, cfg) {
    var layer = L.geoJson(data, {
      style: RM.villageStyle(cfg),
      pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, {radius: 6}); },
      onEachFeature: function (feature, l) {
        l.bindPopup(function () { return RM.villagePopup(feature.properties, cfg); }, {maxWidth: 380});
      }
    });
    layer.riskmapConfig = cfg;
    RM.registry.villages = layer;
    return layer;
  };

  /* Popup of a feature of another layer: its name, the layer's title, then the listed fields. */
  RM.fieldsPopup = function (title, fields, p) {
    var html = "<div class=\"rm-popup\"><div class=\"rm-popup-title\">" + esc(p.name) +
      " <span class=\"rm-code\">" + esc(title) + "</span></div><table>";
    fields.forEach(function (f) {
      var v = p[f[1]];
      if (v !== null && v !== undefined && v !== "") { html += row(f[0], v); }
    });
    return html + "</table></div>";
  };

  RM.featureLayer = function (data, opts) {
    function style(feature) { return L.extend({}, opts.style, feature.properties._s || {}); }
    var layer = L.geoJson(data, {
      style: style,
      pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, style(feature)); },
      onEachFeature: function (feature, l) {
        l.bindPopup(function () { return RM.fieldsPopup(opts.title, opts.fields, feature.properties); });
      }
    });
    if (opts.area) { layer.on("add", function () { layer.bringToBack(); }); }
    RM.registry[opts.key] = layer;
    return layer;
  };

  function layerBounds(l) {
    if (l.getBounds) { return L.latLngBounds(l.getBounds().getSouthWest(), l.getBounds().getNorthEast()); }
    return L.latLngBounds([l.getLatLng(), l.getLatLng()]);
  }

  /* Dim every village outside the township ("" = all); fit the map to the township; return the count. */
  RM.filterTownship = function (map, villages, township, out) {
    var bounds = null, n = 0;
    villages.eachLayer(function (l) {
      var on = !township || l.feature.properties.t === township;
      villages.resetStyle(l);
      if (!on) {
        l.setStyle({fillOpacity: 0.05, opacity: 0.15});
      } else {
        n += 1;
        bounds = bounds ? bounds.extend(layerBounds(l)) : layerBounds(l);
      }
    });
    if (out) { out.textContent = township ? n + " 个村 villages" : ""; }
    if (bounds && township) { map.fitBounds(bounds); }
    return n;
  };

  /* Find villages whose name contains the text or whose code starts with it; open the first. */
  RM.searchVillage = function (map, villages, text, township, out) {
    var q = String(text || "").trim(), hits = [];
    if (q) {
      villages.eachLayer(function (l) {
        var p = l.feature.properties;
        if (township && p.t !== township) { return; }
        if (String(p.n).indexOf(q) >= 0 || String(p.c).indexOf(q) === 0) { hits.push(l); }
      });
    }
    if (out) { out.textContent = !q ? "" : hits.length ? hits.length + " 个结果 found" : "未找到 not found"; }
    if (hits.length) {
      var l = hits[0];
      if (l.getBounds) { map.fitBounds(l.getBounds(), {maxZoom: 14, animate: false}); }
      else { map.setView(l.getLatLng(), 14, {animate: false}); }
      l.openPopup();
    }
    return hits;
  };

  RM.filterControl = function (map, villages, townships) {
    var Control = L.Control.extend({
      onAdd: function () {
        var box = L.DomUtil.create("div", "rm-control rm-filter leaflet-bar");
        var sel = L.DomUtil.create("select", "rm-township", box);
        sel.setAttribute("aria-label", "乡镇 Township");
        var all = document.createElement("option");
        all.value = "";
        all.textContent = "全部乡镇 All townships";
        sel.appendChild(all);
        townships.forEach(function (t) {
          var o = document.createElement("option");
          o.value = t;
          o.textContent = t;
          sel.appendChild(o);
        });
        var input = L.DomUtil.create("input", "rm-search", box);
        input.type = "search";
        input.placeholder = "村名或代码 Village name or code";
        var button = L.DomUtil.create("button", "rm-search-go", box);
        button.type = "button";
        button.textContent = "查找 Find";
        var out = L.DomUtil.create("div", "rm-search-result", box);
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        L.DomEvent.on(sel, "change", function () { RM.filterTownship(map, villages, sel.value, out); });
        function go() { RM.searchVillage(map, villages, input.value, sel.value, out); }
        L.DomEvent.on(button, "click", go);
        L.DomEvent.on(input, "keydown", function (e) { if (e.key === "Enter") { go(); } });
        return box;
      }
    });
    return new Control({position: "topleft"}).addTo(map);
  };

  /* A control holding trusted HTML built (and escaped) by riskmap.maps.legend.  When `layer` is given the
   * control is shown only while that layer is on the map. */
  RM.htmlControl = function (map, position, className, html, layer) {
    var Control = L.Control.extend({
      onAdd: function () {
        var box = L.DomUtil.create("div", "rm-control " + className);
        box.innerHTML = html;
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    var control = new Control({position: position});
    if (!layer) { return control.addTo(map); }
    if (map.hasLayer(layer)) { control.addTo(map); }
    map.on("overlayadd", function (e) { if (e.layer === layer) { control.addTo(map); } });
    map.on("overlayremove", function (e) { if (e.layer === layer) { control.remove(); } });
    return control;
  };

  RM.title = function (map, html) {
    var box = L.DomUtil.create("div", "rm-title", map.getContainer());
    box.innerHTML = html;
    return box;
  };

  global.riskmap = RM;
}(window));
