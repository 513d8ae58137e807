// livedepth's 3D view: the newest live frame as a depth-displaced mesh, in plain WebGL 1.
// No library and nothing from another host, so it works offline (a Pi with no internet).
//
// Data: GET rgbd.png, the frame's colour on the left half and its normalised depth on the right
// (grey, white nearest). The mesh has one vertex per pixel of the left half. The decoded RGBA
// pixels are uploaded as they are into one vertex buffer: vertex v = y * (2 * cols) + x reads
// its colour at byte 4 v and its depth 4 * cols bytes later (the same row's right half), so a
// new frame costs one buffer upload and one pass to choose the triangles.
"use strict";

window.livedepthView3d = (function () {
  const POLL_MS = 250; // a few updates a second: follows the stream, light on a Pi and on Wi-Fi
  const EDGE = 24; // a mesh cell whose corners' depths span more grey levels than this stays open:
  // no rubber sheet from a near object's edge to the background behind it
  const HOME = { yaw: 0.45, pitch: 0.3, distance: 3.4 }; // turned: seen from the left and above
  const BACKGROUND = [17 / 255, 17 / 255, 17 / 255]; // the page's background (#111)

  const VERTEX_SHADER = `
attribute vec2 grid;    // column, row of the vertex in the RGBD image
attribute vec3 colour;  // the left half's pixel
attribute float depth;  // the right half's pixel: n in [0, 1], 1 nearest
uniform mat4 transform;
uniform vec2 size;      // columns, rows of the mesh
uniform float relief;   // z extent of n = 0..1, in units of half the image height
varying vec3 vColour;
void main() {
  vec2 xy = (grid - 0.5 * (size - 1.0)) / (0.5 * size.y);
  gl_Position = transform * vec4(xy.x, -xy.y, relief * (depth - 0.5), 1.0);
  vColour = colour;
}`;
  const FRAGMENT_SHADER = `
precision mediump float;
varying vec3 vColour;
void main() { gl_FragColor = vec4(vColour, 1.0); }`;

  // --- 4x4 matrices, column-major as WebGL wants them ---
  function multiply(a, b) {
    const out = new Float32Array(16);
    for (let c = 0; c < 4; c++)
      for (let r = 0; r < 4; r++)
        for (let k = 0; k < 4; k++) out[c * 4 + r] += a[k * 4 + r] * b[c * 4 + k];
    return out;
  }
  function perspective(fovy, aspect, near, far) {
    const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
  }
  function rotateX(t) {
    const c = Math.cos(t), s = Math.sin(t);
    return [1, 0, 0, 0, 0, c, s, 0, 0, -s, c, 0, 0, 0, 0, 1];
  }
  function rotateY(t) {
    const c = Math.cos(t), s = Math.sin(t);
    return [c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 0, 0, 0, 1];
  }
  function translateZ(z) {
    return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, z, 1];
  }
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }

  function program(gl) {
    const p = gl.createProgram();
    gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
    gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
    return p;
  }

  // create(canvas, source, say): the view, or null without WebGL. source() is the RGBD image's
  // address; say(text) shows a status line ("" clears it). The view polls only between start()
  // and stop(), and not while the tab is hidden.
  return function create(canvas, source, say) {
    const gl = canvas.getContext("webgl", { antialias: true }) || canvas.getContext("experimental-webgl");
    if (!gl) return null;
    const prog = program(gl);
    const loc = {
      grid: gl.getAttribLocation(prog, "grid"),
      colour: gl.getAttribLocation(prog, "colour"),
      depth: gl.getAttribLocation(prog, "depth"),
      transform: gl.getUniformLocation(prog, "transform"),
      size: gl.getUniformLocation(prog, "size"),
      relief: gl.getUniformLocation(prog, "relief"),
    };
    const gridBuffer = gl.createBuffer(), pixelBuffer = gl.createBuffer(), indexBuffer = gl.createBuffer();
    const scratch = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    let cols = 0, rows = 0, count = 0, indices = null;
    let view = { ...HOME }, relief = 0.8, drag = null, pending = false;
    let running = false, busy = false, timer = null, frame = null;

    function buildGrid(w, h) {
      const grid = new Float32Array(2 * 2 * w * h);
      for (let v = 0; v < 2 * w * h; v++) {
        grid[2 * v] = v % (2 * w);
        grid[2 * v + 1] = Math.floor(v / (2 * w));
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, gridBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, grid, gl.STATIC_DRAW);
      indices = new Uint16Array(6 * (w - 1) * (h - 1)); // 2 w h vertices: 51,200 at most (160x160), 16-bit indices
      cols = w;
      rows = h;
    }

    function setFrame(pixels, width, height) {
      const w = width / 2, stride = 2 * w;
      if (w !== cols || height !== rows) buildGrid(w, height);
      gl.bindBuffer(gl.ARRAY_BUFFER, pixelBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, pixels, gl.DYNAMIC_DRAW);
      let k = 0;
      for (let y = 0; y + 1 < height; y++) {
        for (let x = 0; x + 1 < w; x++) {
          const i = y * stride + x, j = i + stride; // top-left and bottom-left vertices of the cell
          const a = pixels[4 * (i + w)], b = pixels[4 * (i + 1 + w)];
          const c = pixels[4 * (j + w)], d = pixels[4 * (j + 1 + w)];
          if (Math.max(a, b, c, d) - Math.min(a, b, c, d) > EDGE) continue;
          indices[k++] = i; indices[k++] = j; indices[k++] = i + 1;
          indices[k++] = i + 1; indices[k++] = j; indices[k++] = j + 1;
        }
      }
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indexBuffer);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, indices.subarray(0, k), gl.DYNAMIC_DRAW);
      count = k;
    }

    function draw() {
      pending = false;
      const scale = window.devicePixelRatio || 1;
      const width = Math.max(1, Math.round(canvas.clientWidth * scale));
      const height = Math.max(1, Math.round(canvas.clientHeight * scale));
      if (canvas.width !== width || canvas.height !== height) {
        canvas.width = width;
        canvas.height = height;
      }
      gl.viewport(0, 0, width, height);
      gl.clearColor(...BACKGROUND, 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      if (!count) return;
      gl.enable(gl.DEPTH_TEST);
      gl.useProgram(prog);
      const camera = multiply(translateZ(-view.distance), multiply(rotateX(view.pitch), rotateY(view.yaw)));
      gl.uniformMatrix4fv(loc.transform, false, multiply(perspective(0.8, width / height, 0.1, 50), camera));
      gl.uniform2f(loc.size, cols, rows);
      gl.uniform1f(loc.relief, relief);
      gl.bindBuffer(gl.ARRAY_BUFFER, gridBuffer);
      gl.enableVertexAttribArray(loc.grid);
      gl.vertexAttribPointer(loc.grid, 2, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, pixelBuffer);
      gl.enableVertexAttribArray(loc.colour);
      gl.vertexAttribPointer(loc.colour, 3, gl.UNSIGNED_BYTE, true, 4, 0);
      gl.enableVertexAttribArray(loc.depth);
      gl.vertexAttribPointer(loc.depth, 1, gl.UNSIGNED_BYTE, true, 4, 4 * cols);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indexBuffer);
      gl.drawElements(gl.TRIANGLES, count, gl.UNSIGNED_SHORT, 0);
      canvas.dataset.frame = frame; // what is on screen (the server's frame number)
    }

    function redraw() {
      if (!pending) {
        pending = true;
        requestAnimationFrame(draw);
      }
    }

    async function load(blob) {
      const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
      scratch.canvas.width = bitmap.width;
      scratch.canvas.height = bitmap.height;
      scratch.drawImage(bitmap, 0, 0);
      bitmap.close();
      return scratch.getImageData(0, 0, scratch.canvas.width, scratch.canvas.height);
    }

    async function poll() {
      timer = null;
      if (!running || document.hidden || busy) return;
      busy = true;
      try {
        const response = await fetch(source(), { cache: "no-store" });
        if (!response.ok) {
          say((await response.text()).trim());
        } else {
          const number = response.headers.get("X-Livedepth-Frame");
          const blob = await response.blob();
          if (number !== frame && running) {
            const image = await load(blob);
            frame = number;
            setFrame(image.data, image.width, image.height);
            redraw();
          }
          say("");
        }
      } catch (e) {
        say("3D view: no answer from the server; retrying...");
      } finally {
        busy = false;
      }
      if (running && !document.hidden && timer === null) timer = setTimeout(poll, POLL_MS);
    }

    canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      view.yaw += (e.clientX - drag.x) * 0.01;
      view.pitch = clamp(view.pitch + (e.clientY - drag.y) * 0.01, -1.5, 1.5);
      drag = { x: e.clientX, y: e.clientY };
      redraw();
    });
    const release = () => { drag = null; };
    canvas.addEventListener("pointerup", release);
    canvas.addEventListener("pointercancel", release);
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      view.distance = clamp(view.distance * Math.exp(e.deltaY * 0.001), 1.2, 12);
      redraw();
    }, { passive: false });
    canvas.addEventListener("dblclick", () => { view = { ...HOME }; redraw(); });
    canvas.addEventListener("webglcontextlost", (e) => {
      e.preventDefault();
      running = false;
      say("The 3D view lost its WebGL context: turn 3D off and on again.");
    });
    document.addEventListener("visibilitychange", () => {
      if (running && !document.hidden && timer === null) poll();
    });

    return {
      start() {
        if (running) return;
        running = true;
        redraw();
        poll();
      },
      stop() {
        running = false;
        clearTimeout(timer);
        timer = null;
      },
      setRelief(value) {
        relief = value;
        redraw();
      },
    };
  };
})();
