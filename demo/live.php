<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Live: Server-Sent Events</title>
<link rel="stylesheet" href="/style.css">
<h1>Live from PHP</h1>
<div class="card">
  <h2>The wall</h2>
  <p>Open this page in as many tabs as you like. A message you send is
  POSTed to <a href="/post.php">post.php</a>, which calls
  <code>spindle_publish()</code>; every tab receives it through Spindle's hub.
  The tabs' streams come from <a href="/feed.php">feed.php</a>, which calls
  <code>spindle_subscribe()</code> and ends: the master holds the stream, so
  no PHP worker waits for any tab.</p>
  <form id="say"><input id="text" maxlength="200" placeholder="Say something" required>
  <button>Send</button></form>
  <ul id="wall"><li class="muted" id="status">connecting…</li></ul>
</div>
<div class="card">
  <p>Progress (<a href="/progress.php">progress.php</a>, a script that streams
  with <code>echo</code> and <code>flush()</code> for a few seconds):
  <span id="pct">0</span>%</p>
  <div class="bar"><div id="bar"></div></div>
  <p><button id="again">Run again</button></p>
</div>
<p>A classic stream that holds a worker for as long as it is open:
<a href="/clock.php">clock.php</a>.</p>
<p><a href="/">Back</a></p>
<script>
const wall = document.getElementById('wall');
const feed = new EventSource('/feed.php');
feed.onopen = () => { document.getElementById('status').textContent = 'connected'; };
feed.addEventListener('message', (e) => {
  const m = JSON.parse(e.data);
  const li = document.createElement('li');
  li.textContent = m.time + '  ' + m.text;
  wall.prepend(li);
});
document.getElementById('say').onsubmit = async (ev) => {
  ev.preventDefault();
  const text = document.getElementById('text');
  await fetch('/post.php', {method: 'POST', body: new URLSearchParams({text: text.value})});
  text.value = '';
};
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
