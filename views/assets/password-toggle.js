// Show password, added only by this script (progressive enhancement): without JavaScript the field
// is a plain password field. The button says what it will do next, and names the field it controls.
(function () {
  'use strict';
  Array.prototype.forEach.call(document.querySelectorAll('[data-show-password]'), function (wrapper) {
    var input = wrapper.querySelector('input');
    if (!input || !input.id) return;
    var show = wrapper.getAttribute('data-show-password');
    var hide = wrapper.getAttribute('data-hide-password');
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'password-toggle';
    button.setAttribute('aria-controls', input.id);
    button.textContent = show;
    button.addEventListener('click', function () {
      var hidden = input.type === 'password';
      input.type = hidden ? 'text' : 'password';
      button.textContent = hidden ? hide : show;
      input.focus();
    });
    wrapper.classList.add('has-toggle');
    wrapper.appendChild(button);
  });
  // Submitting never sends the password in a text field's autofill history.
  Array.prototype.forEach.call(document.querySelectorAll('form'), function (form) {
    form.addEventListener('submit', function () {
      Array.prototype.forEach.call(form.querySelectorAll('[data-show-password] input'), function (input) { input.type = 'password'; });
    });
  });
})();
