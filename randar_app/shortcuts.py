"""Keyboard shortcuts and small-screen CSS of the web app (sent with `launch(head=..., css=...)`).

Shortcuts (what users of editing tools expect; Gradio has none of its own for these):
- Ctrl+Enter (Cmd+Enter): press the Run button of the tab on screen, even while typing in a field;
- Esc: press that tab's Stop button (not while it closes a full-screen view or a list being typed in);
- Ctrl+Z / Ctrl+Shift+Z or Ctrl+Y: undo / redo in the Inpaint tab's image editor. Gradio 6's ImageEditor
  keeps a history of strokes and has Undo/Redo buttons in its toolbar, but no key binding: the shortcut
  presses those buttons. It is left alone while a text field has the focus (undo of typing).
The tab on screen is the one whose Run button is visible (`#<tab>-run`, see widgets.live_panel). Listening in
the capture phase on `document` keeps it working wherever the focus is, the editor's canvas included.
"""
from __future__ import annotations

TABS = ("generate", "inpaint", "outpaint", "upscale", "speed")
EDITOR_ID = "inpaint-editor"

SHORTCUTS_JS = """
<script>
(() => {
  if (window.__randarShortcuts) return;
  window.__randarShortcuts = true;
  const TABS = %(tabs)s;
  const shown = (el) => !!el && el.offsetParent !== null && !el.disabled;
  const currentTab = () => TABS.find((t) => shown(document.getElementById(t + '-run')));
  const typing = (el) => !!el && (el.isContentEditable || el.tagName === 'TEXTAREA' ||
      (el.tagName === 'INPUT' && !['checkbox', 'radio', 'range', 'button', 'file'].includes(el.type)));
  const textField = (el) => !!el && (el.tagName === 'TEXTAREA' ||
      (el.tagName === 'INPUT' && ['text', 'search'].includes(el.type)));
  const press = (selector) => {
    const el = document.querySelector(selector);
    if (!el || el.disabled) return false;
    el.click();
    return true;
  };
  const editorButton = (name) => {
    const editor = document.getElementById('%(editor)s');
    if (!editor || editor.offsetParent === null) return null;
    return [...editor.querySelectorAll('button')].find((b) =>
      (b.getAttribute('aria-label') || b.getAttribute('title') || '').trim().toLowerCase() === name);
  };
  document.addEventListener('keydown', (ev) => {
    const tab = currentTab();
    if (!tab) return;
    const mod = ev.ctrlKey || ev.metaKey;
    const key = ev.key.toLowerCase();
    if (mod && key === 'enter') {
      if (press('#' + tab + '-run')) ev.preventDefault();
    } else if (key === 'escape' && !mod && !ev.shiftKey && !ev.altKey && !document.fullscreenElement &&
               !textField(document.activeElement)) {
      press('#' + tab + '-stop');  // not while Esc closes a full-screen view or a list being typed in
    } else if (mod && (key === 'z' || key === 'y') && tab === 'inpaint' && !typing(document.activeElement)) {
      const button = editorButton(key === 'y' || ev.shiftKey ? 'redo' : 'undo');
      if (button) {
        ev.preventDefault();
        if (!button.disabled) button.click();
      }
    }
  }, true);
})();
</script>
""" % {"tabs": "[" + ", ".join(f"'{t}'" for t in TABS) + "]", "editor": EDITOR_ID}

# Phones (390 px wide): Gradio's editor places its top toolbar (pan, zoom, undo, redo, clear) absolutely at the
# top right of the block, where its label sits; on a narrow block the two overlapped and the label was cut.
# Below 640 px the toolbar moves to its own line under the label, and the canvas area starts under both.
SMALL_SCREEN_CSS = """
@media (max-width: 640px) {
  #%(editor)s { padding-top: 68px !important; }
  #%(editor)s .top-panel { top: 38px !important; }
}
""" % {"editor": EDITOR_ID}

__all__ = ["SHORTCUTS_JS", "SMALL_SCREEN_CSS", "TABS"]
