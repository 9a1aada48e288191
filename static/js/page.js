/*
 * page.js — small behaviours any page declares in its markup (templates/base.html loads it).
 * The Content-Security-Policy runs no inline handlers (onfocus=, hx-on:), so they live here:
 *   data-select-on-focus      an input selects its text when focused (a token, a link to copy);
 *   data-copy-from="ID"       a button copies the value of #ID, then says "Copied";
 *   data-no-submit            a form that never submits (Enter in one of its fields does nothing);
 *   data-open-dialog="ID"     when the element's htmx request succeeds, <dialog id=ID> opens.
 * Listeners sit on the document, so content htmx swaps in later behaves the same.
 */
document.addEventListener("focusin", (event) => {
  const field = event.target.closest && event.target.closest("[data-select-on-focus]");
  if (field) field.select();
});

document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-copy-from]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copyFrom);
  if (!field) return;
  field.select();
  const copied = () => {
    button.textContent = "Copied";
  };
  const legacy = () => document.execCommand("copy") && copied();
  if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(copied, legacy);
  else legacy();
});

document.addEventListener("submit", (event) => {
  if (event.target.matches && event.target.matches("form[data-no-submit]")) event.preventDefault();
});

document.addEventListener("htmx:afterRequest", (event) => {
  const source = event.detail && event.detail.elt;
  const id = source && source.dataset && source.dataset.openDialog;
  if (!id || !event.detail.successful) return;
  const dialog = document.getElementById(id);
  if (dialog && !dialog.open) dialog.showModal();
});
