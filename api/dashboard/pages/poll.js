// Refresh a page's data while it is shown: every `seconds`, skipped while the tab is hidden.
export function every(seconds, refresh) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await refresh(); } catch { /* the next tick retries; the page shows its last numbers meanwhile */ }
    }
    if (!stopped) timer = setTimeout(tick, seconds * 1000);
  };
  timer = setTimeout(tick, seconds * 1000);
  return () => { stopped = true; clearTimeout(timer); };
}
