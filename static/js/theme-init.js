/* theme-init.js — a classic script in <head>, run before the first paint: the theme this
   browser chose (static/js/theme.js keeps it) goes on <html data-theme> so a page never
   flashes the other one. Without a choice the system's preference rules (tokens.css). */
try {
  const chosen = window.localStorage.getItem("switchyard:theme");
  if (chosen === "dark" || chosen === "light") document.documentElement.dataset.theme = chosen;
} catch (err) {
  // Storage refused (a private window's policy): the system's preference it is.
}
