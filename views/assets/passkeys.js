// Passkeys in the browser, for views/partials/passkey.ejs. Each [data-passkey] block is shown only
// when the browser has WebAuthn. Submitting its form asks Tessera for options (a POST with the
// form's CSRF token), lets the browser create or use a passkey, and posts the answer as JSON text in
// the form's `credential` field: the server verifies it and answers like any other form.
(function () {
  'use strict';

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
    var binary = atob(base64 + '===='.slice(0, (4 - (base64.length % 4)) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = '';
    for (var i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function withIds(descriptors) {
    return (descriptors || []).map(function (descriptor) {
      return Object.assign({}, descriptor, { id: toBytes(descriptor.id) });
    });
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    var options = Object.assign({}, json, { challenge: toBytes(json.challenge) });
    if (json.allowCredentials) options.allowCredentials = withIds(json.allowCredentials);
    return options;
  }

  function registrationJson(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: typeof response.getTransports === 'function' ? response.getTransports() : undefined,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
    };
  }

  function authenticationJson(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: response.userHandle ? toBase64url(response.userHandle) : undefined,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
    };
  }

  // The page's words, in its language: the template puts them on the block as data-msg-* attributes.
  function words(block, name) {
    return block.getAttribute('data-msg-' + name) || '';
  }

  function shown(message) {
    var error = new Error(message);
    error.shown = true;
    return error;
  }

  function explain(block, error) {
    if (error && error.name === 'NotAllowedError') return words(block, 'cancelled');
    if (error && error.name === 'InvalidStateError') return words(block, 'exists');
    return (error && error.shown && error.message) || words(block, 'failed');
  }

  function fetchOptions(block, form) {
    return fetch(block.getAttribute('data-options'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
      body: new URLSearchParams({ _csrf: form.elements._csrf.value }),
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw shown(body.error_description || words(block, 'start'));
        return body;
      });
    });
  }

  // Passkey autofill (WebAuthn conditional mediation): on the sign-in page the browser offers the
  // person's passkeys in the email field's suggestions (autocomplete="username webauthn"); picking
  // one signs in. Quietly does nothing where the browser cannot; the button stays the other way.
  function offerAutofill(block, form) {
    if (block.getAttribute('data-autofill') !== 'true' || !PublicKeyCredential.isConditionalMediationAvailable) return undefined;
    var controller = new AbortController();
    // Started when the person reaches for the email field (where the browser lists passkeys), not at
    // load: a page that answered a refused passkey must not ask again by itself.
    var field = document.querySelector('input[autocomplete~="webauthn"]');
    if (!field) return undefined;
    var started = false;
    function start() {
      if (started) return;
      started = true;
      begin();
    }
    field.addEventListener('pointerdown', start);
    field.addEventListener('keydown', start);
    return controller;

    function begin() {
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available || controller.signal.aborted) return undefined;
      return fetchOptions(block, form).then(function (options) {
        if (controller.signal.aborted) return undefined;
        return navigator.credentials.get({ mediation: 'conditional', signal: controller.signal, publicKey: requestOptions(options) });
      }).then(function (credential) {
        if (!credential) return;
        form.elements.credential.value = JSON.stringify(authenticationJson(credential));
        form.submit();
      });
    }).catch(function () { /* aborted, refused or unsupported: the button still works */ });
    }
  }

  function setUp(block) {
    var form = block.querySelector('form');
    var errorBox = block.querySelector('[data-passkey-error]');
    var button = form.querySelector('button[type="submit"]');
    var register = block.getAttribute('data-passkey') === 'register';
    block.hidden = false;
    var autofill = register ? undefined : offerAutofill(block, form);

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      // One WebAuthn request at a time: the button's replaces the autofill's.
      if (autofill) { autofill.abort(); autofill = undefined; }
      errorBox.hidden = true;
      button.disabled = true;
      fetchOptions(block, form)
        .then(function (options) {
          return register
            ? navigator.credentials.create({ publicKey: creationOptions(options) })
            : navigator.credentials.get({ publicKey: requestOptions(options) });
        })
        .then(function (credential) {
          if (!credential) throw shown(words(block, 'none'));
          form.elements.credential.value = JSON.stringify(register ? registrationJson(credential) : authenticationJson(credential));
          form.submit();
        })
        .catch(function (error) {
          errorBox.textContent = explain(block, error);
          errorBox.hidden = false;
          button.disabled = false;
        });
    });
  }

  if (!window.PublicKeyCredential || !navigator.credentials) return;
  Array.prototype.forEach.call(document.querySelectorAll('[data-passkey]'), setUp);
})();
