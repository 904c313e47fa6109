// Live keyword spotting demo: microphone -> AudioWorklet -> WebSocket /v1/stream -> detections on the page.
// URL options: ?api_key=KEY (when the service needs one), ?autostart=1 (start without a click).
"use strict";

const params = new URLSearchParams(location.search);
const apiKey = params.get("api_key") || "";
const CHUNK_S = 0.1;                 // seconds of audio per WebSocket message
const $ = (id) => document.getElementById(id);

let ctx = null, stream = null, ws = null, analyser = null, pending = [], pendingLen = 0, drawing = false;

function setStatus(text, state) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = state || "info";
}

function headers() {
  return apiKey ? {"X-API-Key": apiKey} : {};
}

async function loadModel() {
  try {
    const r = await fetch("/v1/model", {headers: headers()});
    if (!r.ok) throw new Error((await r.json()).detail);
    const m = await r.json();
    $("model-id").textContent = m.model_id;
    $("backend").textContent = m.backend;
  } catch (e) {
    setStatus("model info: " + e.message, "error");
  }
}

function fmt(x, digits, unit) {
  return (x === null || x === undefined) ? "-" : x.toFixed(digits) + " " + unit;
}

async function pollTelemetry() {
  try {
    const r = await fetch("/v1/telemetry", {headers: headers()});
    if (r.ok) {
      const t = await r.json();
      const p = t.power;
      $("power").textContent = p.watts === null ? p.status : fmt(p.watts, 2, "W");
      $("power").dataset.status = p.status;
      $("power-source").textContent = p.source + (p.rails.length ? " (" + p.rails.join(" + ") + ")" : "");
      $("energy").textContent = t.energy_per_word_j === null ? "-" : fmt(t.energy_per_word_j * 1e3, 3, "mJ/word");
      $("throughput").textContent = fmt(t.words_per_s, 1, "words/s") + ", " + t.words_total + " words in all";
      $("temperature").textContent = t.temperature ? fmt(t.temperature.celsius, 1, "°C") + " (" +
        t.temperature.source + ")" : "no sensor";
    }
  } catch (e) { /* the next poll tries again */ }
  setTimeout(pollTelemetry, 1000);
}

function showDetection(d) {
  const kw = $("keyword");
  kw.textContent = d.label;
  kw.dataset.label = d.label;
  kw.classList.add("flash");
  setTimeout(() => kw.classList.remove("flash"), 400);
  $("keyword-detail").textContent = "confidence " + d.confidence.toFixed(2) + " at " + d.time_s.toFixed(2) + " s";
  const li = document.createElement("li");
  li.className = "detection";
  li.dataset.label = d.label;
  li.dataset.time = d.time_s;
  li.innerHTML = "<b></b> <span class=conf></span>";
  li.querySelector("b").textContent = d.label;
  li.querySelector(".conf").textContent = "(" + d.confidence.toFixed(2) + ") at " + d.time_s.toFixed(2) + " s";
  $("detections").prepend(li);
}

function sendPcm(block) {
  pending.push(block);
  pendingLen += block.length;
  const need = Math.round(ctx.sampleRate * CHUNK_S);
  if (pendingLen < need) return;
  const pcm = new Int16Array(pendingLen);
  let off = 0;
  for (const b of pending) {
    for (let i = 0; i < b.length; i++) {
      const s = Math.max(-1, Math.min(1, b[i]));
      pcm[off++] = s < 0 ? s * 32768 : s * 32767;
    }
  }
  pending = []; pendingLen = 0;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer);
}

function drawSpectrogram() {
  const canvas = $("spectrogram"), g = canvas.getContext("2d");
  const bins = new Uint8Array(analyser.frequencyBinCount);
  const step = () => {
    if (!drawing) return;
    analyser.getByteFrequencyData(bins);
    g.drawImage(canvas, -1, 0);                                  // scroll left by one pixel
    const h = canvas.height, nyq = ctx.sampleRate / 2, top = Math.min(8000, nyq);
    const used = Math.floor(bins.length * top / nyq);
    for (let y = 0; y < h; y++) {
      const v = bins[Math.floor((h - 1 - y) * used / h)];
      g.fillStyle = "hsl(" + (240 - v * 240 / 255) + ",100%," + (v * 50 / 255) + "%)";
      g.fillRect(canvas.width - 1, y, 1, 1);
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

async function start() {
  $("start").disabled = true;
  setStatus("asking for the microphone...");
  try {
    stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: false,
      noiseSuppression: false, autoGainControl: false}});
    ctx = new AudioContext({sampleRate: 16000});
    await ctx.resume();
    const source = ctx.createMediaStreamSource(stream);
    analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    analyser.smoothingTimeConstant = 0;
    source.connect(analyser);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    mute.connect(ctx.destination);
    if (ctx.audioWorklet) {
      await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
      const node = new AudioWorkletNode(ctx, "pcm-capture");
      node.port.onmessage = (e) => sendPcm(e.data);
      source.connect(node);
      node.connect(mute);
    } else {                                                    // older browsers
      const node = ctx.createScriptProcessor(2048, 1, 1);
      node.onaudioprocess = (e) => sendPcm(new Float32Array(e.inputBuffer.getChannelData(0)));
      source.connect(node);
      node.connect(mute);
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = proto + "//" + location.host + "/v1/stream?encoding=pcm_s16le&channels=1&sample_rate=" + ctx.sampleRate;
    if (apiKey) url += "&api_key=" + encodeURIComponent(apiKey);
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "ready") setStatus("listening (" + m.sample_rate + " Hz, " + m.backend + ")", "listening");
      else if (m.type === "detection") showDetection(m);
      else if (m.type === "level") {
        $("level").textContent = m.rms_dbfs.toFixed(1);
        $("level").dataset.dbfs = m.rms_dbfs;
        $("stream-time").textContent = m.time_s.toFixed(1);
      } else if (m.type === "error") setStatus("server: " + m.detail, "error");
    };
    ws.onclose = (e) => {
      if (e.code !== 1000 && e.code !== 1005) setStatus("stream closed (" + e.code + ") " + e.reason, "error");
      else setStatus("stopped", "idle");
    };
    ws.onerror = () => setStatus("WebSocket error", "error");
    drawing = true;
    drawSpectrogram();
    $("stop").disabled = false;
  } catch (e) {
    setStatus("cannot start: " + e.message, "error");
    $("start").disabled = false;
  }
}

function stop() {
  drawing = false;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({type: "end"}));
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  ctx = null; stream = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
loadModel();
pollTelemetry();
if (params.get("autostart") === "1") start();
