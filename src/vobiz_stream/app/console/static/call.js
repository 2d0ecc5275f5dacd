// A call's page: draws each recording's waveform per channel from the server's peaks, moves a
// playhead with the player, marks the timeline's events on the waveform, and seeks on a click,
// a timeline button, or the arrow keys on a focused waveform.
"use strict";
(function () {
  var colours = ["#1f5f9e", "#b0581a"];

  function draw(canvas, channel, duration, player, marks) {
    var ratio = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.floor(canvas.clientWidth * ratio));
    var height = Math.max(1, Math.floor(canvas.clientHeight * ratio));
    canvas.width = width; canvas.height = height;
    var g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    var mid = height / 2, n = channel.max.length, drawn = 0;
    g.fillStyle = colours[Number(canvas.dataset.channel) % colours.length];
    for (var x = 0; x < width && n; x++) {
      var i = Math.min(n - 1, Math.floor(x * n / width));
      var top = mid - channel.max[i] * mid, bottom = mid - channel.min[i] * mid;
      g.fillRect(x, top, 1, Math.max(1, bottom - top));
      if (channel.max[i] - channel.min[i] > 0.002) drawn++;
    }
    g.fillStyle = "rgba(29,35,42,.45)";
    marks.forEach(function (offset) {
      if (duration > 0 && offset >= 0 && offset <= duration) g.fillRect(Math.round(offset / duration * width), 0, 1, 6 * ratio);
    });
    if (player && duration > 0) {
      g.fillStyle = "#a12622";
      g.fillRect(Math.round(player.currentTime / duration * width), 0, Math.max(1, ratio), height);
    }
    canvas.dataset.drawn = String(drawn);
  }

  function seek(player, seconds) {
    if (!player) return;
    player.currentTime = Math.max(0, seconds);
  }

  document.querySelectorAll("section.recording[data-peaks-stream]").forEach(function (section, index) {
    var player = section.querySelector("audio.player");
    var canvases = section.querySelectorAll("canvas.waveform");
    var marks = index === 0 ? Array.prototype.map.call(
      document.querySelectorAll("#timeline .seek[data-offset]"),
      function (b) { return Number(b.dataset.offset); }) : [];
    if (!canvases.length) return;
    var url = "/api/calls/" + encodeURIComponent(section.dataset.call) + "/peaks";
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
      var stream = body.streams.find(function (s) { return String(s.stream_row) === section.dataset.peaksStream; });
      if (!stream || !stream.channels) return;
      function redraw() {
        canvases.forEach(function (canvas) {
          draw(canvas, stream.channels[Number(canvas.dataset.channel)], stream.duration, player, marks);
        });
      }
      redraw();
      window.addEventListener("resize", redraw);
      if (player) player.addEventListener("timeupdate", redraw);
      canvases.forEach(function (canvas) {
        canvas.tabIndex = 0;
        canvas.addEventListener("click", function (event) {
          var box = canvas.getBoundingClientRect();
          seek(player, (event.clientX - box.left) / box.width * stream.duration);
        });
        canvas.addEventListener("keydown", function (event) {
          if (!player) return;
          if (event.key === "ArrowRight") { seek(player, player.currentTime + 1); event.preventDefault(); }
          if (event.key === "ArrowLeft") { seek(player, player.currentTime - 1); event.preventDefault(); }
          if (event.key === " ") { if (player.paused) player.play(); else player.pause(); event.preventDefault(); }
        });
      });
    });
  });

  var first = document.querySelector("section.recording audio.player");
  document.querySelectorAll("#timeline button.seek").forEach(function (button) {
    button.addEventListener("click", function () {
      seek(first, Number(button.dataset.offset));
      if (first) first.play();
    });
  });
})();
