<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Live: Server-Sent Events</title>
<link rel="stylesheet" href="/style.css">
<h1>Live from PHP</h1>
<p>Both widgets are fed by PHP scripts that <code>echo</code> and <code>flush()</code>;
Spindle hands every flush to your browser's <code>EventSource</code> at once.</p>
<div class="card">
  <p>Server clock (<a href="/clock.php">clock.php</a>): <strong id="clock">connecting…</strong></p>
</div>
<div class="card">
  <p>Progress (<a href="/progress.php">progress.php</a>): <span id="pct">0</span>%</p>
  <div class="bar"><div id="bar"></div></div>
  <p><button id="again">Run again</button></p>
</div>
<p><a href="/">Back</a></p>
<script>
const clock = new EventSource('/clock.php');
clock.addEventListener('tick', (e) => { document.getElementById('clock').textContent = JSON.parse(e.data).time; });
let progress;
function run() {
  if (progress) progress.close();
  progress = new EventSource('/progress.php');
  progress.addEventListener('progress', (e) => {
    const p = JSON.parse(e.data).percent;
    document.getElementById('pct').textContent = p;
    document.getElementById('bar').style.width = p + '%';
  });
  progress.addEventListener('done', () => progress.close());
}
document.getElementById('again').onclick = run;
run();
</script>
