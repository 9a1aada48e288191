/*
 * theme.js — light or dark. The colours are the tokens of static/css/tokens.css; this
 * only says which set: the system's preference (prefers-color-scheme) until the person
 * presses the header's toggle ([data-theme-toggle]), then their choice, remembered in
 * localStorage under "switchyard:theme" and put on <html data-theme> (before the first
 * paint by theme-init.js). Whenever the theme in effect changes, document hears
 * "switchyard:theme" {detail: {theme}}: the canvas redraws what it paints from JS.
 */
const KEY = "switchyard:theme";
const system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

/** "dark" or "light": the theme in effect now. */
export function currentTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen === "dark" || chosen === "light") return chosen;
  return system && system.matches ? "dark" : "light";
}

/** The value of a colour token (a CSS custom property on :root) in the theme in effect. */
export function token(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function announce() {
  const theme = currentTheme();
  for (const button of document.querySelectorAll("[data-theme-toggle]")) {
    button.setAttribute("aria-pressed", String(theme === "dark"));
    button.title = theme === "dark" ? "Dark theme (press for light)" : "Light theme (press for dark)";
  }
  document.dispatchEvent(new CustomEvent("switchyard:theme", { detail: { theme } }));
}

/** Choose a theme ("dark" or "light") and remember it in this browser. */
export function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  try {
    window.localStorage.setItem(KEY, theme);
  } catch (err) {
    // Not remembered, still applied.
  }
  announce();
}

document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-theme-toggle]");
  if (button) setTheme(currentTheme() === "dark" ? "light" : "dark");
});
if (system && system.addEventListener) system.addEventListener("change", announce);
announce();
