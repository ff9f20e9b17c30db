import { IsString, MaxLength, MinLength } from 'class-validator';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../credentials';

export class ChangePasswordDto {
  /** The password you signed in with. @example admin-password-123 */
  @IsString()
  @MaxLength(MAX_PASSWORD_LENGTH)
  current_password: string;

  /** At least 12 characters. @example a-new-long-passphrase */
  @IsString()
  @MinLength(MIN_PASSWORD_LENGTH, { message: `new_password must be at least ${MIN_PASSWORD_LENGTH} characters` })
  @MaxLength(MAX_PASSWORD_LENGTH)
  new_password: string;
}

export class ResetPasswordDto {
  /** The user's new password: at least 12 characters. Tell it to them out of band. @example a-new-long-passphrase */
  @IsString()
  @MinLength(MIN_PASSWORD_LENGTH, { message: `new_password must be at least ${MIN_PASSWORD_LENGTH} characters` })
  @MaxLength(MAX_PASSWORD_LENGTH)
  new_password: string;
}

export class PasswordChangedDto {
  /** @example true */
  success: boolean;
  /** Sessions of this user that were ended (for your own change: all but the one you used). @example 2 */
  sessions_ended: number;
}
