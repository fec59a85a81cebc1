"""A page script that tells the server about files the Inpaint editor cannot read.

Why: Gradio's image editor decodes an upload in the browser, on its canvas; a file the browser cannot decode (a
text file named .png, a truncated picture) is dropped there without a word and nothing reaches the server, so
the user only learned at Run that there was "no image to edit". The script tries to decode every file given to
the editor (its file picker or a drop) and, when that fails, writes the file's name into a hidden text box of the
tab (`#inpaint-upload-problem`, CSS-hidden: Gradio does not render invisible components), whose change event
makes the server say it (`InpaintTab.editor_upload_problem`). Files the browser decodes go their usual way.
"""
from __future__ import annotations

# editor element id -> the hidden text box that carries the name of a file it could not read
BRIDGES = {"inpaint-editor": "inpaint-upload-problem"}

UPLOAD_CHECK_CSS = "".join(f"#{bridge} {{ display: none !important; }}\n" for bridge in BRIDGES.values())

UPLOAD_CHECK_JS = """<script>
(() => {
  const BRIDGES = %s;
  const report = (bridge, name) => {
    const box = document.querySelector('#' + bridge + ' textarea, #' + bridge + ' input');
    if (!box) return;
    box.value = name + '\\n' + Date.now();  // a new value each time: the same file twice is said twice
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  const check = (target, files) => {
    const editor = target && target.closest ? target.closest(Object.keys(BRIDGES).map(id => '#' + id).join(',')) : null;
    if (!editor || !files) return;
    for (const file of files) {
      createImageBitmap(file).then(b => { if (b.close) b.close(); }, () => report(BRIDGES[editor.id], file.name));
    }
  };
  document.addEventListener('change', e => {
    if (e.target && e.target.type === 'file') check(e.target, e.target.files);
  }, true);
  document.addEventListener('drop', e => check(e.target, e.dataTransfer ? e.dataTransfer.files : null), true);
})();
</script>""" % repr(BRIDGES).replace("'", '"')

__all__ = ["BRIDGES", "UPLOAD_CHECK_CSS", "UPLOAD_CHECK_JS"]
